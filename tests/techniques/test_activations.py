import numpy as np
import pytest
import torch
from torch import nn

from netsight.techniques.activations import ChannelAccumulator, activation_statistics, percentile_from_histogram
from netsight.ops.stages import conv_stages
from netsight.errors import NetsightError
from netsight.models import ModelConfig, build_model
from netsight.ops.hooks import count_hooks
from tests.helpers import Exploding


def test_stages_of_the_assignment_networks():
    lenet = [s.label for s in conv_stages(build_model(ModelConfig("lenet5")), (1, 28, 28))]
    assert lenet == ["conv1", "conv1/relu", "conv1/pool", "conv2", "conv2/relu", "conv2/pool"]
    bn = [s.label for s in conv_stages(build_model(ModelConfig("cnn-bn")), (1, 28, 28))]
    assert bn[:4] == ["conv1", "conv1/relu", "conv1/pool", "conv1/bn"] and len(bn) == 12
    with pytest.raises(NetsightError, match="model lstm has no Conv2d layer"):
        conv_stages(build_model(ModelConfig("lstm")), (1, 28, 28))


def test_chan_merge_equals_one_pass_in_float64():
    torch.manual_seed(0)
    x = torch.randn(50, 3, 4, 4) * 1000 + 1e6  # large offset: naive sum-of-squares would lose digits
    acc = ChannelAccumulator()
    for chunk in x.split(7):
        acc.update(chunk)
    flat = x.double().transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(acc.mean, flat.mean(1), rtol=0, atol=1e-9)
    torch.testing.assert_close((acc.m2 / acc.count).sqrt(), flat.std(1, unbiased=False), rtol=1e-12, atol=1e-9)
    overall = acc.overall()
    assert overall["std"] == pytest.approx(flat.reshape(-1).std(unbiased=False).item(), rel=1e-12)
    assert overall["count"] == x.numel()


def _direct(model, images, modules):
    """Each module's output, from one forward pass with a hook on every one of them."""
    store = {}
    named = dict(model.named_modules())
    handles = [named[m].register_forward_hook(lambda _, i, o, m=m: store.update({m: o})) for m in modules]
    with torch.no_grad():
        model.eval()(images.float() / 255)
    for handle in handles:
        handle.remove()
    return {m: v.double() for m, v in store.items()}


@pytest.mark.parametrize("name", ["lenet5", "cnn-bn"])
def test_statistics_match_a_direct_computation(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name))
    images = torch.randint(0, 256, (37, 1, 28, 28), dtype=torch.uint8)
    stats = activation_statistics(model, images, batch_size=8)  # 5 batches, the last one short
    direct = _direct(model, images, {stage.module for stage in stats.stages})
    for row, stage in zip(stats.rows, stats.stages, strict=True):
        v = direct[stage.module]
        flat = v.reshape(-1)
        assert row["count"] == flat.numel()
        assert row["mean"] == pytest.approx(flat.mean().item(), rel=1e-9, abs=1e-12)
        assert row["std"] == pytest.approx(flat.std(unbiased=False).item(), rel=1e-9)
        assert (row["min"], row["max"]) == pytest.approx((flat.min().item(), flat.max().item()), rel=1e-6)
        assert row["zero_frac"] == pytest.approx((flat == 0).double().mean().item())
        half_bin = (row["max"] - row["min"]) / (2 * 8192)
        for q, exact in zip((1, 50, 99), np.percentile(flat.numpy(), (1, 50, 99), method="inverted_cdf"), strict=True):
            assert abs(row[f"p{q}"] - exact) <= half_bin * 1.0001 + 1e-7, (stage.label, q)
            if exact == 0:
                assert row[f"p{q}"] == 0.0  # ranks among the exact zeros are exact
        dead = (v.transpose(0, 1).reshape(v.shape[1], -1).amax(1) <= 0).sum().item()
        assert row["dead_channels"] == dead


def test_hand_weighted_network_with_known_activations():
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.zero_()
    model = nn.Sequential()
    model.add_module("conv1", conv)
    model.add_module("relu1", nn.ReLU())
    model.add_module("pool1", nn.MaxPool2d(2))
    images = torch.tensor([[0, 51], [102, 255]], dtype=torch.uint8).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    stats = {r["layer"] + "/" + r["stage"]: r for r in activation_statistics(model, images).rows}
    conv_row, relu_row, pool_row = stats["conv1/conv"], stats["conv1/relu"], stats["conv1/pool"]
    x = np.array([0, 0.2, 0.4, 1.0])
    assert conv_row["mean"] == pytest.approx(0.0, abs=1e-15)  # channel 1 is exactly -channel 0
    assert conv_row["std"] == pytest.approx(np.sqrt(np.mean(x**2)))
    assert (conv_row["min"], conv_row["max"]) == pytest.approx((-1.0, 1.0))
    assert relu_row["mean"] == pytest.approx(x.mean() / 2)
    assert relu_row["zero_frac"] == pytest.approx(5 / 8)  # channel 1 all zero, channel 0 one zero
    assert relu_row["dead_channels"] == 1 and conv_row["dead_channels"] == 1
    assert pool_row["count"] == 3 * 2 and pool_row["max"] == pytest.approx(1.0) and pool_row["mean"] == pytest.approx(0.5)


def test_percentile_from_histogram_error_bound():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(100_001) ** 3
    lo, hi, bins = v.min(), v.max(), 1000
    counts = torch.histc(torch.from_numpy(v), bins=bins, min=lo, max=hi)
    for q in (1, 25, 50, 99):
        est = percentile_from_histogram(counts, lo, hi, q)
        assert abs(est - np.percentile(v, q, method="inverted_cdf")) <= (hi - lo) / (2 * bins) + 1e-12


def test_memory_does_not_hold_the_dataset():
    """Accumulators are per channel: their size does not depend on how many images stream by."""
    model = build_model(ModelConfig("lenet5"))
    small = activation_statistics(model, torch.zeros(10, 1, 28, 28, dtype=torch.uint8))
    large = activation_statistics(model, torch.zeros(120, 1, 28, 28, dtype=torch.uint8), batch_size=20)  # 12x, in 6 batches
    assert [len(h[0]) for h in small.histograms.values()] == [len(h[0]) for h in large.histograms.values()]
    assert len(small.per_channel) == len(large.per_channel)


def test_activation_statistics_leaves_no_hook_even_when_forward_raises():
    model = Exploding()
    with pytest.raises(RuntimeError, match="boom"):
        activation_statistics(model, torch.zeros(4, 1, 5, 5, dtype=torch.uint8))
    assert count_hooks(model) == 0
    model = build_model(ModelConfig("cnn-bn"))
    activation_statistics(model, torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
    assert count_hooks(model) == 0
