"""The numbers behind `netsight explore`, each against an independent computation."""

import pytest
import torch
from scipy.stats import spearmanr

from netsight.ops.deconvnet_graph import make_deconvnet
from netsight.techniques.explore_units import explore_layer, rank_correlations
from netsight.ops.randomise import cascading
from netsight.techniques.explore import fully_randomised
from netsight.data.images import tensor_images
from netsight.techniques.occlusion import occlusion_maps
from netsight.ops.occluding import default_square
from netsight.ops.topk import crop, top_activations
from netsight.models import ModelConfig, build_model
from tests.conftest import tiny_dataset


@pytest.fixture(scope="module")
def explored():
    torch.manual_seed(0)
    model = build_model(ModelConfig("cnn-bn")).eval()
    images = tiny_dataset("cifar10-assignment", n_test=60).test_images
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = fully_randomised(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the user's model untouched
    return model, images, explore_layer(model, tensor_images(images), "conv2", batch_size=16, randomised=twin.eval()), twin


def test_top9_and_statistics_match_direct_computations(explored):
    model, images, units, _ = explored
    assert units.target == "relu2" and units.projections.shape[:2] == (64, 9)
    top = top_activations(model, images, "conv2", k=9)
    torch.testing.assert_close(units.top.values, top.values)
    assert torch.equal(units.top.image_index, top.image_index) and torch.equal(units.top.positions, top.positions)
    seen = {}
    handle = model.relu2.register_forward_hook(lambda m, i, o: seen.update(a=o.double()))
    with torch.no_grad():
        model(images.float() / 255)
    handle.remove()
    act = seen["a"].transpose(0, 1).reshape(64, -1)
    for m in (0, 7, 63):
        s = units.stats[m]
        assert s["mean"] == pytest.approx(act[m].mean().item(), rel=1e-9)
        assert s["std"] == pytest.approx(act[m].std(unbiased=False).item(), rel=1e-6)
        assert s["zero_frac"] == pytest.approx((act[m] == 0).double().mean().item())
        assert s["dead"] == bool(act[m].max() <= 0)
        assert sum(units.histograms[m]["counts"]) == len(images)


def test_occlusion_and_invariance_per_unit(explored):
    model, images, units, _ = explored
    for m in (3, 50):
        first = units.occlusion[m][0]
        assert first["image"] == int(units.top.image_index[m, 0])
        expected = occlusion_maps(model, images[first["image"]].float() / 255, 0, "relu2", feature_map=m)
        torch.testing.assert_close(torch.tensor(first["map"]), expected.feature_max, rtol=1e-5, atol=1e-6)
        assert first["unoccluded"] == pytest.approx(float(units.top.values[m, 0]), rel=1e-5)
    for kind, curve in units.invariance.items():
        identity = {"vertical": 0.0, "rotation": 0.0, "scale": 1.0}[kind.split()[0]]
        at = curve["amounts"].index(identity)
        for m, row in enumerate(curve["response"]):
            if units.stats[m]["dead"]:
                assert all(v is None for v in row)  # a dead unit has no invariance to speak of
            else:
                assert row[at] == pytest.approx(1.0, abs=1e-5), (kind, m)
    assert len(units.images) == len({int(i) for i in units.top.image_index.flatten()})


def test_the_fully_randomised_model_is_the_last_step_of_the_cascade(explored):
    model, _, _, twin = explored
    *_, (layer, last) = cascading(model)
    assert layer == "conv1"
    assert all(torch.equal(v, last.state_dict()[k]) for k, v in twin.state_dict().items())
    assert not torch.equal(twin.conv2.weight, model.conv2.weight) and not torch.equal(twin.fc2.weight, model.fc2.weight)


def test_projections_through_random_weights_and_their_rank_correlation(explored):
    model, images, units, twin = explored
    r = units.randomised
    assert r.projections.shape == units.projections.shape
    net = make_deconvnet(twin, "conv2", (1, 28, 28))
    checked = 0
    for m in (0, 9, 40):
        for j in range(9):
            i, (y, x) = int(units.top.image_index[m, j]), units.top.positions[m, j].tolist()
            image = images[[i]].float() / 255
            own = net.project(image, m, "max", torch.tensor([[y, x]]))  # the random model's own deconvnet
            expected, _ = crop(own.images, units.top.positions[m, j][None], units.field)
            if float(own.values[0]) > 0:  # it scales with the signal: the trained activation sent down instead
                scale = float(units.top.values[m, j]) / float(own.values[0])
                torch.testing.assert_close(r.projections[m, j], expected[0] * scale, rtol=1e-4, atol=1e-6)
                checked += 1
            inside = units.valid[m, j].expand_as(units.projections[m, j]).bool()
            a, b = units.projections[m, j][inside], r.projections[m, j][inside]
            assert b.abs().max() > 0  # a picture even where random weights leave the unit at zero
            # Spearman with tied values given their average rank (random weights can leave exact zeros)
            assert r.rho[m][j] == pytest.approx(float(spearmanr(a.numpy(), b.numpy()).statistic), abs=1e-9)
        assert r.unit_rho[m] == pytest.approx(sum(r.rho[m]) / 9)
    assert checked >= 3, checked


def test_rank_correlation_of_a_constant_map_is_none():
    a = torch.rand(2, 3, 1, 5, 5)
    b = a.clone()
    b[1, 2] = 0  # a dead unit's projection
    valid = torch.ones(2, 3, 1, 5, 5)
    rho = rank_correlations(a, b, valid)
    assert rho[0] == [pytest.approx(1.0)] * 3 and rho[1][2] is None
    assert rank_correlations(a, -a, valid)[1][0] == pytest.approx(-1.0)
    ties = torch.tensor([1.0, 2.0, 2.0, 3.0, 5.0]).view(1, 1, 1, 1, 5)  # ranks 1, 2.5, 2.5, 4, 5 against 1..5
    order = torch.arange(5.0).view(1, 1, 1, 1, 5)
    ranks = torch.tensor([1, 2.5, 2.5, 4, 5]) - 3  # Pearson of the centred ranks
    expected = float((ranks * (torch.arange(5.0) - 2)).sum() / ((ranks**2).sum() * 10).sqrt())
    assert rank_correlations(ties, order, torch.ones(1, 1, 1, 1, 5))[0][0] == pytest.approx(expected)


# ------------------------------------------------------------------ the "every unit" modes against the code they replaced


def _previous_occlusion(net, top, load, size: int, stride: int) -> list[list[dict]]:
    """explore_units._occlusion as it was before explore called the occlusion technique (commit eccf795), verbatim."""
    from netsight.ops.occluding import occluded_copies

    maps = top.values.shape[0]
    chosen = {m: [int(i) for i in top.image_index[m, :3]] for m in range(maps)}
    responses: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for i in sorted({i for ims in chosen.values() for i in ims}):
        image = load([i])[0]
        copies, rows, cols = occluded_copies(image, size, stride, 0.5)
        out = torch.cat([net.activations(copies[s : s + 512]).flatten(2).amax(2) for s in range(0, len(copies), 512)])
        unoccluded = net.activations(image[None]).flatten(2).amax(2)[0]
        responses[i] = (out.T.reshape(-1, rows, cols).cpu(), unoccluded.cpu())
    return [
        [{"image": i, "map": responses[i][0][m].tolist(), "unoccluded": float(responses[i][1][m])} for i in chosen[m]]
        for m in range(maps)
    ]


def _previous_invariance(net, top, load) -> dict[str, dict]:
    """explore_units._invariance as it was before explore called the invariance technique (commit eccf795), verbatim."""
    from netsight.techniques.invariance import sweeps_for, transform

    index = sorted({int(i) for i in top.image_index.flatten()})
    position = {i: j for j, i in enumerate(index)}
    x = torch.cat([load(index[s : s + 256]) for s in range(0, len(index), 256)])
    base = net.activations(x).flatten(2).amax(2)  # [images, maps]
    mine = torch.tensor([[position[int(i)] for i in row] for row in top.image_index])  # [maps, k]
    maps = torch.arange(top.values.shape[0])[:, None]
    reference = base[mine, maps]  # [maps, k]
    responds = (reference > 0).double()
    result = {}
    for kind, amounts in sweeps_for(x.shape[2]).items():
        curves = []
        for amount in amounts:
            moved = net.activations(transform(x, kind, float(amount))).flatten(2).amax(2)[mine, maps]
            ratio = (moved / reference.clamp_min(1e-30)).double() * responds
            curves.append((ratio.sum(1) / responds.sum(1)).cpu())
        response = torch.stack(curves, 1)
        result[kind] = {
            "amounts": [float(a) for a in amounts],
            "response": [[None if v != v else float(v) for v in row] for row in response.tolist()],
        }
    return result


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_occlusion_and_invariance_equal_what_explore_computed_before(explored, layer):
    """explore's occlusion maps and invariance curves, now the occlusion and invariance techniques' "every unit"
    modes, equal the numbers of the code they replaced (run here on the same model and top-9 units)."""
    model, images, units, _ = explored
    if layer != "conv2":
        units = explore_layer(model, tensor_images(images), layer, batch_size=16)
    net = make_deconvnet(model, layer, tuple(images.shape[1:]))
    load = lambda index: images[list(index)].float() / 255  # noqa: E731
    before = _previous_occlusion(net, units.top, load, *default_square(images.shape[2]))  # the square explore takes
    assert [[o["image"] for o in row] for row in units.occlusion] == [[o["image"] for o in row] for row in before]
    for now, then in zip(units.occlusion, before, strict=True):
        for a, b in zip(now, then, strict=True):
            torch.testing.assert_close(torch.tensor(a["map"]), torch.tensor(b["map"]), rtol=1e-5, atol=1e-5)
            assert a["unoccluded"] == pytest.approx(b["unoccluded"], rel=1e-5, abs=1e-6)
    then = _previous_invariance(net, units.top, load)
    assert list(units.invariance) == list(then)
    for kind, curve in units.invariance.items():
        assert curve["amounts"] == then[kind]["amounts"]
        for row, old in zip(curve["response"], then[kind]["response"], strict=True):
            assert [v is None for v in row] == [v is None for v in old]
            assert [v for v in row if v is not None] == pytest.approx([v for v in old if v is not None], rel=1e-5, abs=1e-6)


def test_the_occlusion_figure_reads_one_map_of_every_units_maps():
    """`occlusion_maps` (the figure's) and `unit_occlusion` (explore's) are one computation: the figure's tracked map is
    the every-unit result's map, and both equal a copy-by-copy loop through the model."""
    from netsight.ops.occluding import occluded_copies
    from netsight.techniques.occlusion import unit_occlusion

    torch.manual_seed(1)
    model = build_model(ModelConfig("lenet5")).eval()
    images = torch.rand(3, 1, 28, 28)
    seen = {}
    handle = model.relu2.register_forward_hook(lambda m, i, o: seen.update(a=o))
    try:
        every = unit_occlusion(lambda x: (model(x), seen["a"])[1], images, 6, 3, batch_size=50)  # batches across images
        copies, rows, cols = occluded_copies(images[1], 6, 3, 0.5)
        with torch.no_grad():
            one_by_one = torch.stack([(model(c[None]), seen["a"])[1][0].flatten(1).amax(1) for c in copies])
    finally:
        handle.remove()
    assert every.maps.shape == (3, model.conv2.out_channels, rows, cols) and every.whole.shape == (3, model.conv2.out_channels)
    torch.testing.assert_close(every.maps[1], one_by_one.T.reshape(-1, rows, cols), rtol=1e-5, atol=1e-6)
    figure = occlusion_maps(model, images[1], 3, "relu2", 6, 3)
    torch.testing.assert_close(figure.feature_max, every.maps[1, figure.feature_map], rtol=1e-5, atol=1e-6)
    assert figure.feature_map == int(every.whole[1].argmax()) and figure.unoccluded_feature == pytest.approx(
        float(every.whole[1].max())
    )
