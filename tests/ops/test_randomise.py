"""Model parameter randomisation (Adebayo et al. 2018): the order of the layers, the copies, and
the user's model left exactly as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsight.ops.randomise import cascading, check_layers, independent, randomisable_layers
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
        if depth == 1:  # bn4's reset_parameters: running statistics back to 0 and 1 as well
            assert torch.equal(a["bn4.running_mean"], torch.zeros(256)) and torch.equal(a["bn4.weight"], torch.ones(256))
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
