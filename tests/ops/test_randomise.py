"""Model parameter randomisation (Adebayo et al. 2018): the order of the layers, the copies, the user's
model left exactly as it was, normalisation layers that really change, draws and the depth schedule."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from netsight.ops.randomise import (
    cascading,
    check_layers,
    depth_schedule,
    independent,
    randomisable_layers,
    randomised,
)
from netsight.errors import NetsightError
from netsight.models.cnn import CNNBatchNorm, LeNet5


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_layers_run_from_the_logits_down():
    assert randomisable_layers(LeNet5((1, 28, 28))) == ["fc2", "fc1", "conv2", "conv1"]
    assert randomisable_layers(CNNBatchNorm((1, 28, 28))) == ["fc2", "bn4", "fc1", "bn3", "conv3", "bn2", "conv2", "bn1", "conv1"]


def _trained_like(model: nn.Module) -> nn.Module:
    """Every parameter and running statistic moved off its initial value, as training does."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                b.add_(torch.rand_like(b))
    return model


def test_cascading_randomises_top_down_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = _trained_like(CNNBatchNorm((1, 28, 28))).eval()
    before, rng = _state(model), torch.get_rng_state()
    layers = randomisable_layers(model)
    seen = []
    for depth, (layer, twin) in enumerate(cascading(model, seed=3)):
        seen.append(layer)
        assert twin is not model and not twin.training
        a, b = twin.state_dict(), model.state_dict()
        for i, name in enumerate(layers):
            changed = not torch.equal(a[f"{name}.weight"], b[f"{name}.weight"])
            assert changed == (i <= depth), (layer, name)
        if depth == 1:  # bn4: random weight and bias at the trained scale, statistics permuted; not the identity
            for key in ("bn4.running_mean", "bn4.running_var"):
                assert not torch.equal(a[key], b[key]) and torch.equal(a[key].sort().values, b[key].sort().values), key
            for key in ("bn4.weight", "bn4.bias"):
                assert (a[key] < 0).any() and (a[key] > 0).any(), key  # random signs
                assert 0.7 < float(a[key].pow(2).mean() / b[key].pow(2).mean()) < 1.4, key  # the trained scale
    assert seen == layers
    assert _same(before, _state(model)) and not model.training
    assert torch.equal(rng, torch.get_rng_state())  # the caller's random state is left as it was


def test_independent_matches_the_cascade_for_its_layer_and_changes_only_it():
    torch.manual_seed(1)
    model = LeNet5((1, 28, 28)).train()
    before = _state(model)
    layers = randomisable_layers(model)
    one = independent(model, layers[2], seed=5)
    assert one.training and _same(before, _state(model)) and model.training
    a, b = one.state_dict(), model.state_dict()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed == {f"{layers[2]}.weight", f"{layers[2]}.bias"}
    cascade = dict(cascading(model, seed=5))[layers[2]]
    assert torch.equal(cascade.state_dict()[f"{layers[2]}.weight"], a[f"{layers[2]}.weight"])
    again = independent(model, layers[2], seed=5)  # seeded: the same weights again
    assert torch.equal(again.state_dict()[f"{layers[2]}.weight"], a[f"{layers[2]}.weight"])
    other = independent(model, layers[2], seed=6)
    assert not torch.equal(other.state_dict()[f"{layers[2]}.weight"], a[f"{layers[2]}.weight"])


class _NoReset(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.scale


def test_a_layer_without_reset_parameters_is_named():
    model = nn.Sequential(nn.Linear(3, 3), _NoReset())
    with pytest.raises(NetsightError, match=r"'1' \(_NoReset\) has parameters but no reset_parameters"):
        next(cascading(model))
    with pytest.raises(NetsightError, match="no reset_parameters"):
        check_layers(model)
    assert check_layers(model, ["0"]) == ["0"]
    with pytest.raises(NetsightError, match="no module with parameters"):
        check_layers(nn.Sequential(nn.ReLU()))
    with pytest.raises(NetsightError, match="not a module"):
        independent(model, "nope")
    assert independent(model, "0") is not model


def test_a_randomised_batch_norm_changes_the_output_and_is_not_reset_to_the_identity():
    torch.manual_seed(2)
    model = _trained_like(CNNBatchNorm((1, 28, 28))).eval()
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        before = model(x)
        for layer in ("bn1", "bn4"):
            twin = independent(model, layer, seed=0)
            after = twin(x)
            assert (after - before).abs().mean() > 0.05 * before.abs().mean(), layer  # the output moves
            a, b = twin.state_dict(), model.state_dict()
            assert torch.equal(a[f"{layer}.running_var"].sort().values, b[f"{layer}.running_var"].sort().values)
            assert not torch.equal(a[f"{layer}.running_var"], b[f"{layer}.running_var"])
    norm = torch.nn.LayerNorm(6)  # untrained: weight 1 (scale 1: random signs), bias 0 (scale 0: stays 0)
    fresh = independent(nn.Sequential(norm), "0").state_dict()
    assert not torch.equal(fresh["0.weight"], torch.ones(6)) and torch.equal(fresh["0.bias"], torch.zeros(6))


def test_draws_differ_and_each_is_reproducible_and_randomised_puts_the_layer_back():
    torch.manual_seed(3)
    model = _trained_like(CNNBatchNorm((1, 28, 28))).eval()
    trained = _state(model)
    weights: dict[int, list] = {}
    for seed in (0, 1, 2, 0):  # the fully cascaded model of each seed (one working copy, randomised further each step)
        weights.setdefault(seed, []).append(_state(list(cascading(model, seed=seed, copies=False))[-1][1]))
    assert _same(weights[0][0], weights[0][1])  # seed 0 twice: the same weights
    assert not any(_same(weights[0][0], weights[s][0]) for s in (1, 2))
    work = copy.deepcopy(model)
    with randomised(work, "conv2", seed=4) as twin:
        assert twin is work and not torch.equal(work.conv2.weight, model.conv2.weight)
        assert torch.equal(work.conv2.weight, independent(model, "conv2", seed=4).conv2.weight)
    assert _same(_state(work), trained) and _same(_state(model), trained)


def test_the_depth_schedule_keeps_the_top_and_reaches_the_first_layer():
    assert depth_schedule(4, 12) == [1, 2, 3, 4] and depth_schedule(4, None) == [1, 2, 3, 4] and depth_schedule(0, 12) == []
    deep = depth_schedule(41, 12)  # ResNet-18's 41 layers with parameters
    assert len(deep) == 12 and deep[:4] == [1, 2, 3, 4] and deep[-1] == 41 and deep == sorted(set(deep))
    gaps = [b - a for a, b in zip(deep[3:], deep[4:], strict=False)]
    assert max(gaps) - min(gaps) <= 1  # evenly spaced below the top three
    assert depth_schedule(41, 1) == [41] and depth_schedule(41, 2) == [1, 41]
    with pytest.raises(ValueError):
        depth_schedule(41, 0)
