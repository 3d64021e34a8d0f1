"""Forward/backward/shape checks over every registered model (a new model is tested the day it is added)."""

import pytest
import torch
from torch import nn

from netsight.errors import NetsightError
from netsight.models import MODELS, ModelConfig, build_model, count_parameters
from netsight.train.rundir import load_weights, save_weights


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_forward_backward_and_shapes(name, shape):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name, shape, num_classes=10))
    x = torch.rand(6, *shape, requires_grad=True)
    logits = model(x)
    assert logits.shape == (6, 10)
    logits.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(MODELS))
def test_rebuilds_from_its_weights_file_alone(name, tmp_path):
    torch.manual_seed(1)
    config = ModelConfig(name, (1, 28, 28), hidden=32)
    model = build_model(config).eval()
    save_weights(model, config, tmp_path / "m.safetensors")
    again = load_weights(tmp_path / "m.safetensors")
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), again(x))
    assert again.netsight_config == config


def test_lenet5_is_the_assignments_architecture():
    model = build_model(ModelConfig("lenet5"))
    names = [n for n, _ in model.named_children()]
    assert names == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]
    assert model.conv1.weight.shape == (32, 1, 5, 5) and model.conv2.weight.shape == (64, 32, 5, 5)
    assert model.fc1.in_features == 7 * 7 * 64 and model.fc1.out_features == 1024  # "input 7x7x64"
    assert all(isinstance(m, nn.ReLU) for n, m in model.named_children() if n.startswith("relu"))


def test_cnn_bn_pools_round_up_to_4x4x64():
    model = build_model(ModelConfig("cnn-bn"))
    assert model.fc1.in_features == 4 * 4 * 64 and model.fc1.out_features == 256
    assert model.conv2.kernel_size == (3, 3) and isinstance(model.bn4, nn.BatchNorm1d)


def test_rnn_reads_rows_with_channels():
    model = build_model(ModelConfig("gru", (3, 32, 32), hidden=16))
    assert model.rnn.input_size == 96 and model.rnn.hidden_size == 16
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    rows = model.rows(x)
    assert rows.shape == (2, 4, 15)
    assert rows[1, 2].tolist() == [x[1, c, 2, w].item() for w in range(5) for c in range(3)]
    steps = model.forward_steps(torch.rand(2, 3, 32, 32))
    assert steps.shape == (2, 32, 10)


def test_starter_init_is_truncated_normal_with_bias_point_one():
    torch.manual_seed(0)
    model = build_model(ModelConfig("lenet5", init="starter"))
    w = model.fc1.weight
    assert w.abs().max() <= 0.2 and abs(w.std().item() - 0.088) < 0.003  # std of N(0, .1) cut at 2 sigma
    assert torch.all(model.conv1.bias == 0.1)
    lstm = build_model(ModelConfig("lstm", init="starter"))
    assert torch.all(lstm.rnn.bias_hh_l0 == 0.1)


def test_bad_model_requests():
    with pytest.raises(NetsightError, match="model 'resnet': unknown; expected one of lenet5"):
        build_model(ModelConfig("resnet"))
    with pytest.raises(NetsightError, match="--init 'xavier'"):
        build_model(ModelConfig("lenet5", init="xavier"))


def test_parameter_counts():
    assert count_parameters(build_model(ModelConfig("lenet5"))) == (32 * 25 + 32) + (64 * 32 * 25 + 64) + (3136 * 1024 + 1024) + (
        1024 * 10 + 10
    )
    assert count_parameters(build_model(ModelConfig("lstm", hidden=128))) == 4 * (128 * 28 + 128 * 128 + 2 * 128) + 128 * 10 + 10
