import pytest
import torch

from netsight.ops.hooks import capture_outputs, count_hooks, leaf_execution_order
from netsight.errors import NetsightError
from netsight.models import ModelConfig, build_model
from tests.helpers import Exploding


def test_no_hook_survives_a_raising_forward():
    model = Exploding()
    with pytest.raises(RuntimeError, match="boom"):
        with capture_outputs(model, ["conv1", "relu1"]):
            assert count_hooks(model) == 2
            model(torch.zeros(1, 1, 5, 5))
    assert count_hooks(model) == 0


def test_no_hook_survives_a_normal_call():
    model = build_model(ModelConfig("cnn-bn")).eval()
    with capture_outputs(model, ["conv1", "relu1"]) as out:
        model(torch.zeros(3, 1, 28, 28))
    assert set(out) == {"conv1", "relu1"} and count_hooks(model) == 0


def test_unknown_layer_names_the_layers():
    with pytest.raises(NetsightError, match="layer\\(s\\) conv9 not in the model; its layers are: conv1, relu1"):
        with capture_outputs(build_model(ModelConfig("lenet5")), ["conv9"]):
            pass


def test_execution_order_follows_the_forward_pass():
    order = [n for n, _ in leaf_execution_order(build_model(ModelConfig("lenet5")), torch.zeros(1, 1, 28, 28))]
    assert order == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]
