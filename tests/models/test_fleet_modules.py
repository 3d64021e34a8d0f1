"""Fleet modules: K members stacked compute exactly what the K members compute alone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netsight.errors import NetsightError
from netsight.models import ModelConfig, build_model
from netsight.models.fleet_modules import load_member_states, member_state, stack_models


def _members(name: str, k: int = 3, **kw):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(build_model(ModelConfig(name, **kw)))
    return out


@pytest.mark.parametrize(
    "name, kw, shape",
    [
        ("lenet5", {}, (1, 28, 28)),
        ("cnn-bn", {"dropout": 0.0}, (1, 28, 28)),
        ("lenet5", {}, (3, 32, 32)),
        ("rnn", {"hidden": 16}, (1, 28, 28)),
        ("lstm", {"hidden": 16}, (1, 28, 28)),
        ("gru", {"hidden": 16}, (3, 32, 32)),
    ],
)
def test_outputs_and_gradients_equal_the_members(name, kw, shape):
    members = _members(name, input_shape=shape, **kw)
    fleet = stack_models(members)
    x = torch.rand(3, 6, *shape)
    y = torch.randint(0, 10, (3, 6))
    for mode in ("train", "eval"):
        fleet.train(mode == "train")
        for m in members:
            m.train(mode == "train")
            m.zero_grad()
        fleet.zero_grad()
        logits = fleet(x)
        outs = [m(x[i]) for i, m in enumerate(members)]  # once: a second pass would update BN statistics again
        torch.testing.assert_close(logits, torch.stack(outs), rtol=1e-5, atol=1e-5)
        F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1), reduction="none").view(3, 6).mean(1).sum().backward()
        for i, out in enumerate(outs):
            F.cross_entropy(out, y[i]).backward()
        grads = {n: p.grad for n, p in fleet.named_parameters()}
        for i, m in enumerate(members):
            for n, p in m.named_parameters():
                torch.testing.assert_close(grads[n].view(3, *p.shape)[i], p.grad, rtol=1e-5, atol=1e-5, msg=f"{mode} {n}")
    # batch norm kept per-member running statistics
    if name == "cnn-bn":
        state = fleet.state_dict()
        for i, m in enumerate(members):
            torch.testing.assert_close(state["bn1.running_mean"].view(3, -1)[i], m.bn1.running_mean)


def test_the_batched_cells_are_torchs_cells():
    """Gate order and both biases as nn.RNN/LSTM/GRU, for random weights (not only the init's)."""
    for cell in ("rnn", "lstm", "gru"):
        members = _members(cell, hidden=12)
        with torch.no_grad():
            for m in members:
                for p in m.parameters():
                    p.normal_(0, 0.5)
        fleet = stack_models(members)
        x = torch.rand(3, 4, 1, 28, 28)
        torch.testing.assert_close(fleet(x), torch.stack([m(x[i]) for i, m in enumerate(members)]), rtol=1e-5, atol=1e-5)


def test_member_states_round_trip():
    members = _members("cnn-bn")
    fleet = stack_models(members)
    template = members[0].state_dict()
    for i, m in enumerate(members):
        for key, value in member_state(fleet, template, 3, i).items():
            assert torch.equal(value, m.state_dict()[key]), key
    fresh = stack_models(_members("cnn-bn"))
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    load_member_states(fresh, [m.state_dict() for m in members])
    for key, value in fleet.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_unstackable_members_are_refused():
    with pytest.raises(NetsightError, match="members differ in cell or size"):
        stack_models(_members("gru", 1, hidden=8) + _members("gru", 1, hidden=16))
    with pytest.raises(NetsightError, match="cannot stack layer Upsample"):
        stack_models([nn.Sequential(nn.Upsample(scale_factor=2))] * 2)


# The CNNs read 12x12 images here, not 28x28: the same layers and the same maths (grouped convolutions, "SAME" pooling that
# rounds up on cnn-bn, the stacked linear layers and Adam), but LeNet5's first linear layer shrinks from 3136 to 576 inputs
# (3.2M -> 0.6M weights per member), which made its float64 steps ~6x cheaper (12 s -> 2 s of CPU). Stacking at the real
# shapes is checked above (28x28 and 32x32, outputs and gradients).
@pytest.mark.parametrize(
    "name, kw, shape",
    [
        pytest.param("lenet5", {}, (1, 12, 12), marks=pytest.mark.slow),  # float64 convolutions have no fast kernels
        pytest.param("cnn-bn", {"dropout": 0.0}, (1, 12, 12), marks=pytest.mark.slow),
        ("lstm", {"hidden": 16}, (1, 28, 28)),
        ("gru", {"hidden": 16}, (1, 28, 28)),
    ],
)
def test_in_float64_a_fleet_trains_exactly_like_its_members(name, kw, shape):
    """12 Adam steps on each member's own batches (a wrong batch or gradient shows at the first): in float64 the
    fleet's losses equal the single runs' to 1e-8 (measured over 50 steps, at worst on cnn-bn: 1.8e-11 on one CPU, 1.6e-9 on
    this project's 2-core machine, whose kernels sum in another order, at 28x28; 2.7e-10 and 4.3e-10 at 12x12; LeNet5: 9e-16),
    so the float32 gaps are rounding, not maths: a wrong gradient or batch moves the loss by 1e-3 and more."""
    from netsight.data import Dataset
    from netsight.train.loop import BatchSampler
    from tests.conftest import tiny_dataset

    data, seeds = tiny_dataset(shape=shape), (1, 2, 3)
    members = [m.double().train() for m in _members(name, input_shape=shape, **kw)]
    fleet = stack_models(members).double().train()
    fleet_opt = torch.optim.Adam(fleet.parameters(), lr=1e-3)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in members]
    fleet_samplers = [BatchSampler(256, 16, s, torch.device("cpu")) for s in seeds]
    samplers = [BatchSampler(256, 16, s, torch.device("cpu")) for s in seeds]
    for _ in range(12):
        idx = torch.stack([s.next() for s in fleet_samplers])
        logits = fleet(Dataset.normalise(data.train_images[idx]).double())
        losses = F.cross_entropy(logits.reshape(-1, 10), data.train_labels[idx].reshape(-1), reduction="none").view(3, -1).mean(1)
        fleet_opt.zero_grad()
        losses.sum().backward()
        fleet_opt.step()
        for i, (m, opt, sampler) in enumerate(zip(members, opts, samplers, strict=True)):
            j = sampler.next()
            loss = F.cross_entropy(m(Dataset.normalise(data.train_images[j]).double()), data.train_labels[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert abs(loss.item() - losses[i].item()) < 1e-8
