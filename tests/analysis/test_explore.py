"""The numbers behind `netsight explore`, each against an independent computation."""

import pytest
import torch

from netsight.analysis.explore import explore_layer
from netsight.data.images import tensor_images
from netsight.analysis.occlusion import occlusion_maps
from netsight.analysis.topk import top_activations
from netsight.models import ModelConfig, build_model
from tests.conftest import tiny_dataset


@pytest.fixture(scope="module")
def explored():
    torch.manual_seed(0)
    model = build_model(ModelConfig("cnn-bn")).eval()
    images = tiny_dataset("cifar10-assignment", n_test=60).test_images
    return model, images, explore_layer(model, tensor_images(images), "conv2", batch_size=16)


def test_top9_and_statistics_match_direct_computations(explored):
    model, images, units = explored
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
    model, images, units = explored
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
