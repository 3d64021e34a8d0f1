"""The numbers behind `netsight explore`, each against an independent computation."""

import pytest
import torch

from netsight.ops.deconvnet_graph import make_deconvnet
from netsight.techniques.explore_units import explore_layer, rank_correlations
from netsight.ops.randomise import cascading
from netsight.techniques.explore import fully_randomised
from netsight.data.images import tensor_images
from netsight.techniques.occlusion import occlusion_maps
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
            assert len(a.unique()) == len(a) and len(b.unique()) == len(b)  # no ties: ranks by sorting
            ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
            assert r.rho[m][j] == pytest.approx(float(torch.corrcoef(torch.stack([ra, rb]))[0, 1]), abs=1e-9)
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
