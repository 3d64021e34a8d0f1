"""The checks `attribution_maps` makes before its first map share their one-image forward passes
(on a CPU one image costs about a quarter of a 16-image batch): one plain pass, one per ReLU rule."""

from __future__ import annotations

import torch

from netsight.ops.attribution import attribution_maps, rectified_nonlinearities
from netsight.models import ModelConfig, build_model


def test_the_checks_run_the_model_once_plain_and_once_per_relu_rule():
    torch.manual_seed(0)
    model = build_model(ModelConfig("lenet5", (1, 28, 28), 10)).eval()
    x = torch.rand(4, 1, 28, 28)
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    try:
        got = attribution_maps(model, x, ["deconvnet", "guided_backprop"], targets=0)
    finally:
        handle.remove()
    assert sizes.count(1) == 3, sizes  # the first image: plain, under the deconvnet's rule, under guided backprop's
    assert sizes.count(4) == 2  # then each method's batch
    expected = rectified_nonlinearities(model, x[:1])
    for a in got.values():  # the non-linearities counted during the rule's pass are the plain pass's
        assert a.notes["rectified"] == expected["rectified"] == ["ReLU x3"]  # conv1, conv2, fc1
        assert a.notes["not_rectified"] == expected["not_rectified"]
