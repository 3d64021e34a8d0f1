"""The attribution family (ops/attribution.py), each method against an independent reference:
Captum (Saliency, InputXGradient, IntegratedGradients, GuidedBackprop, Deconvolution, LayerGradCam,
GuidedGradCam, Occlusion) or autograd by hand; on LeNet5, cnn-bn and a
torchvision ResNet-18 with random weights, and on a model with functional and in-place ReLUs,
where Captum's module-hook rules are wrong. The user's model is left untouched; bad input is one
line, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from torch import nn

from netsight.ops.attribution import (
    METHODS,
    attribute,
    attribution_maps,
    rectified_nonlinearities,
    smoothgrad_noise,
)
from netsight.ops.hooks import count_hooks
from netsight.data.images import tensor_images
from netsight.errors import NetsightError
from netsight.models import ModelConfig, build_model

TARGETS = torch.tensor([3, 7])


def _model(name: str) -> tuple[nn.Module, torch.Tensor, str]:
    """(model in float64, eval mode; 2 images; its Grad-CAM layer)."""
    torch.manual_seed(0)
    if name == "resnet18":
        from torchvision.models import resnet18

        model, x, layer = resnet18(weights=None), torch.rand(2, 3, 64, 64), "layer4"
    else:
        model, x = build_model(ModelConfig(name)), torch.rand(2, 1, 28, 28)
        layer = "conv2"
    return model.double().eval(), x.double(), layer


MODELS = ["lenet5", "cnn-bn", pytest.param("resnet18", marks=pytest.mark.slow)]  # a float64 ResNet-18: the whole suite only


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    torch.set_num_threads(1)
    return _model(request.param)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-7) -> None:
    a, b = a.double(), b.double()
    scale = float(b.abs().max())
    assert scale > 0
    assert float((a - b).abs().max()) <= rtol * scale + 1e-12, float((a - b).abs().max()) / scale


def _maps(model, x, method, **kw) -> torch.Tensor:
    return attribute(model, x, method, targets=TARGETS, **kw).maps


# ------------------------------------------------------------------ plain gradients


def test_gradient_and_gradient_x_input_equal_autograd_and_captum(case):
    model, x, _ = case
    r = attribution_maps(model, x, ["gradient", "gradient_x_input"], targets=TARGETS)
    inputs = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(inputs).gather(1, TARGETS[:, None]).sum(), inputs)
    _close(r["gradient"].maps, g.sum(1), 1e-5)  # the maps are float32
    _close(r["gradient"].maps, Saliency(model).attribute(x, TARGETS, abs=False).sum(1), 1e-5)
    _close(r["gradient_x_input"].maps, InputXGradient(model).attribute(x, TARGETS).sum(1), 1e-5)
    assert r["gradient"].targets == [3, 7] and r["gradient"].target_kind == "given classes"


# ------------------------------------------------------------------ integrated gradients


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
def test_integrated_gradients_equal_captum_and_report_their_completeness(case, method):
    model, x, _ = case
    steps = 4 if x.shape[1] == 3 else 16  # the ResNet is slow in float64
    a = attribute(model, x, "integrated_gradients", targets=TARGETS, steps=steps, ig_method=method, batch_size=8)
    ref, delta = IntegratedGradients(model).attribute(
        x, torch.zeros_like(x), TARGETS, n_steps=steps, method=method, return_convergence_delta=True
    )
    _close(a.maps, ref.sum(1), 1e-5)
    with torch.no_grad():
        gap = model(x).gather(1, TARGETS[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, TARGETS[:, None])[:, 0]
    by_hand = (ref.flatten(1).sum(1) - gap).abs() / gap.abs()
    assert a.notes["completeness_error"] == pytest.approx(float(by_hand.max()), rel=1e-6, abs=1e-9)
    assert float((delta.abs() / gap.abs()).max()) <= a.notes["completeness_error"] * (1 + 1e-6) + 1e-9


@pytest.mark.parametrize("name", ["lenet5", "cnn-bn"])
def test_integrated_gradients_complete_to_the_error_they_report(name):
    model, x, _ = _model(name)
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, TARGETS[:, None])[:, 0]
    errors = []
    for steps in (4, 64):
        a = attribute(model, x, "integrated_gradients", targets=TARGETS, steps=steps)
        off = (a.maps.double().flatten(1).sum(1) - gap).abs() / gap.abs()
        assert float(off.max()) <= a.notes["completeness_error"] * (1 + 1e-4) + 1e-5  # float32 maps
        errors.append(a.notes["completeness_error"])
    assert errors[1] < 0.05 and errors[1] < errors[0] / 4  # measured: 0.009 (lenet5) and 0.046 (cnn-bn) at 64 steps


# ------------------------------------------------------------------ SmoothGrad


def test_smoothgrad_is_the_average_gradient_of_the_noisy_copies(case):
    model, x, _ = case
    a = attribute(model, x, "smoothgrad", targets=TARGETS, samples=3, noise=0.2, seed=3, batch_size=2)
    expected = []
    for i in range(len(x)):
        noisy = (x[i][None] + smoothgrad_noise(x.shape[1:], 3, 0.2, 3, i)).requires_grad_(True)
        (g,) = torch.autograd.grad(model(noisy)[:, int(TARGETS[i])].sum(), noisy)
        expected.append(g.mean(0).sum(0))
    _close(a.maps, torch.stack(expected), 1e-5)
    again = attribute(model, x, "smoothgrad", targets=TARGETS, samples=3, noise=0.2, seed=3, batch_size=1)
    _close(again.maps, a.maps, 1e-5)  # the same noise whatever the batch size
    other = attribute(model, x, "smoothgrad", targets=TARGETS, samples=3, noise=0.2, seed=4)
    assert not torch.allclose(a.maps, other.maps)


def test_smoothgrad_squared_and_vargrad_are_the_mean_square_and_variance_of_the_noisy_gradients(case):
    """Hooker et al. 2019's SG-SQ and VarGrad against a direct computation: every noisy copy's gradient by
    autograd, one image at a time, then the mean of their squares and their variance (torch.var, /samples)."""
    model, x, _ = case
    r = attribution_maps(model, x, ["smoothgrad_squared", "vargrad"], targets=TARGETS, samples=4, noise=0.2, seed=5, batch_size=2)
    squared, variance = [], []
    for i in range(len(x)):
        noisy = (x[i][None] + smoothgrad_noise(x.shape[1:], 4, 0.2, 5, i)).requires_grad_(True)
        (g,) = torch.autograd.grad(model(noisy)[:, int(TARGETS[i])].sum(), noisy)  # [S, C, H, W]
        squared.append(g.square().mean(0).sum(0))
        variance.append(g.var(0, unbiased=False).sum(0))
    _close(r["smoothgrad_squared"].maps, torch.stack(squared), 1e-5)
    _close(r["vargrad"].maps, torch.stack(variance), 1e-4)
    assert float(r["vargrad"].maps.min()) >= 0 and float(r["smoothgrad_squared"].maps.min()) >= 0
    assert r["vargrad"].notes["samples"] == 4
    one = attribution_maps(model, x, ["vargrad"], targets=TARGETS, samples=4, noise=0.2, seed=5, batch_size=1)["vargrad"]
    _close(one.maps, r["vargrad"].maps, 1e-5)  # the same noise whatever the batch size
    with pytest.raises(NetsightError, match="vargrad: --samples 0"):
        attribution_maps(model, x, ["vargrad"], targets=TARGETS, samples=0)


# ------------------------------------------------------------------ the ReLU rules


def test_guided_backprop_and_deconvnet_equal_captum_on_module_relus(case):
    model, x, _ = case
    r = attribution_maps(model, x, ["guided_backprop", "deconvnet"], targets=TARGETS)
    _close(r["guided_backprop"].maps, GuidedBackprop(model).attribute(x, TARGETS).sum(1), 1e-5)
    _close(r["deconvnet"].maps, Deconvolution(model).attribute(x, TARGETS).sum(1), 1e-5)
    assert r["guided_backprop"].notes["rectified"] and r["guided_backprop"].notes["not_rectified"] == []


class Modules(nn.Module):
    """A small CNN with nn.ReLU modules (what Captum's rules hook)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 7 * 7, 10)
        self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        x = F.max_pool2d(self.r1(self.conv1(x)), 2)
        x = F.max_pool2d(self.r2(self.conv2(x)) + self.r3(x.mean(1, keepdim=True)), 2)  # a skip connection
        return self.fc(x.flatten(1))


class Functional(Modules):
    """The same weights; its ReLUs are F.relu, an in-place x.relu_() and torch.relu: Captum does not see them."""

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(self.conv2(x).relu_() + torch.relu(x.mean(1, keepdim=True)), 2)
        return self.fc(x.flatten(1))


def _twins():
    torch.manual_seed(1)
    modules = Modules().double().eval()
    functional = Functional().double().eval()
    functional.load_state_dict(modules.state_dict())
    return modules, functional, torch.rand(2, 1, 28, 28, dtype=torch.float64)


@pytest.mark.parametrize("method, rule", [("guided_backprop", GuidedBackprop), ("deconvnet", Deconvolution)])
def test_relu_rules_hold_for_functional_and_in_place_relus_where_captum_is_wrong(method, rule):
    modules, functional, x = _twins()
    assert torch.allclose(modules(x), functional(x))
    reference = rule(modules).attribute(x, TARGETS).sum(1)  # Captum, right on the module twin
    captum_wrong = rule(functional).attribute(x, TARGETS).sum(1)  # Captum on functional ReLUs: a plain gradient
    ours = _maps(functional, x, method)
    _close(ours, reference, 1e-5)
    _close(captum_wrong, _maps(functional, x, "gradient"), 1e-5)
    assert float((captum_wrong - reference).abs().max()) > 0.05 * float(reference.abs().max())


class Shared(Modules):
    """The same weights; one nn.ReLU module called three times (as a torchvision ResNet block reuses its relu)."""

    def forward(self, x):
        x = F.max_pool2d(self.r1(self.conv1(x)), 2)
        x = F.max_pool2d(self.r1(self.conv2(x)) + self.r1(x.mean(1, keepdim=True)), 2)
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("method, rule", [("guided_backprop", GuidedBackprop), ("deconvnet", Deconvolution)])
def test_captums_relu_rules_hold_on_a_shared_relu_module_and_fail_on_functional_relus(method, rule):
    """What the docs say of Captum (0.9): a reused nn.ReLU module is hooked at every call, so its rules are right
    there (equal to netsight's and to the separate-module twin's); functional ReLUs are not hooked at all, so there
    Captum's map is the plain gradient and differs from the rule's."""
    modules, functional, x = _twins()
    shared = Shared().double().eval()
    shared.load_state_dict(modules.state_dict())
    assert torch.allclose(modules(x), shared(x))
    reference = rule(modules).attribute(x, TARGETS).sum(1)
    _close(rule(shared).attribute(x, TARGETS).sum(1), reference, 1e-10)  # shared module: right
    _close(_maps(shared, x, method), reference, 1e-5)
    on_functional = rule(functional).attribute(x, TARGETS).sum(1)  # functional: the plain gradient
    _close(on_functional, _maps(functional, x, "gradient"), 1e-5)
    assert float((on_functional - reference).abs().max()) > 0.05 * float(reference.abs().max())


def test_guided_backprop_by_hand_on_a_chain():
    """The guided rule written out: every ReLU's backward keeps the signal where both it and the forward input are positive."""
    modules, _, x = _twins()
    w1, w2 = modules.conv1, modules.conv2

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2, self.fc = w1, w2, modules.fc

        def forward(self, inp):
            return self.fc(F.max_pool2d(F.relu(self.conv2(F.max_pool2d(F.relu(self.conv1(inp)), 2))), 2).flatten(1))

    net = Net().eval()
    inputs = x.clone().requires_grad_(True)
    a1 = w1(inputs)
    m1, i1 = F.max_pool2d(a1.clamp_min(0), 2, return_indices=True)
    a2 = w2(m1)
    m2, i2 = F.max_pool2d(a2.clamp_min(0), 2, return_indices=True)
    out = modules.fc(m2.flatten(1)).gather(1, TARGETS[:, None]).sum()
    (g_m2,) = torch.autograd.grad(out, m2, retain_graph=True)
    g_a2 = F.max_unpool2d(g_m2, i2, 2, output_size=a2.shape[2:])
    g_a2 = g_a2.clamp_min(0) * (a2 > 0)
    (g_m1,) = torch.autograd.grad(a2, m1, g_a2, retain_graph=True)
    g_a1 = F.max_unpool2d(g_m1, i1, 2, output_size=a1.shape[2:]).clamp_min(0) * (a1 > 0)
    (g_x,) = torch.autograd.grad(a1, inputs, g_a1)
    _close(_maps(net, x, "guided_backprop"), g_x.sum(1), 1e-5)


def test_a_forward_relying_on_an_in_place_overwrite_is_refused():
    """Its ReLU's returned value is dropped: only the overwrite carries the rectification, which the rules cannot keep."""

    class Overwrites(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 26 * 26, 10)

        def forward(self, x):
            y = self.conv(x)
            F.relu(y, inplace=True)
            return self.fc(y.flatten(1))

    model = Overwrites().eval()
    x = torch.rand(2, 1, 28, 28)
    assert attribute(model, x, "gradient").maps.shape == (2, 28, 28)  # a plain gradient is fine
    for method in ("guided_backprop", "deconvnet", "guided_gradcam"):
        with pytest.raises(NetsightError, match="out-of-place ReLUs the model computes different scores"):
            attribute(model, x, method)


def test_the_non_relu_non_linearities_are_named():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.act = nn.GELU()
            self.six = nn.ReLU6()
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            x = F.silu(self.six(self.act(self.conv(x))))
            x = F.hardswish(F.relu(x, inplace=True))
            return self.fc(x.mean((2, 3)))

    model = Mixed().eval()
    x = torch.rand(2, 3, 16, 16)
    found = rectified_nonlinearities(model, x)
    assert found["rectified"] == ["ReLU x1"]
    assert {s.split(" x")[0] for s in found["not_rectified"]} == {"GELU", "Hardtanh (nn.ReLU6)", "SiLU", "Hardswish"}
    a = attribute(model, x, "guided_backprop", targets="predicted", layer="conv")
    assert a.notes["not_rectified"] == found["not_rectified"] and a.notes["rectified"] == ["ReLU x1"]
    assert "rectified" not in attribute(model, x, "gradient").notes


# ------------------------------------------------------------------ Grad-CAM


def test_gradcam_and_guided_gradcam_equal_captum(case):
    model, x, layer = case
    r = attribution_maps(model, x, ["gradcam", "guided_gradcam"], targets=TARGETS, layer=layer)
    module = dict(model.named_modules())[layer]
    cam = LayerGradCam(model, module).attribute(x, TARGETS, relu_attributions=True)
    ref = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")[:, 0]
    _close(r["gradcam"].maps, ref, 1e-5)
    assert r["gradcam"].layer == layer
    guided = GuidedGradCam(model, module).attribute(x, TARGETS, interpolate_mode="bilinear").sum(1)
    _close(r["guided_gradcam"].maps, guided, 1e-5)


def test_gradcam_defaults_to_the_last_convolution():
    model, x, _ = _model("lenet5")
    assert attribute(model, x, "gradcam").layer == "conv2"


# ------------------------------------------------------------------ occlusion


def test_occlusion_equals_captum_occlusion_of_the_probability(case):
    model, x, _ = case
    big = x.shape[-1] > 28  # the ResNet: a few large squares (9 positions), not 121
    a = attribute(
        model, x, "occlusion", targets=TARGETS, occlusion_size=32 if big else None, occlusion_stride=16 if big else None
    )
    size, stride = a.notes["size"], a.notes["stride"]
    c = x.shape[1]
    ref = Occlusion(lambda inp: model(inp).softmax(1)).attribute(
        x,
        sliding_window_shapes=(c, size, size),
        strides=(c, stride, stride),
        baselines=0.5,
        target=TARGETS,
        perturbations_per_eval=64,
    )
    _close(a.maps, ref[:, 0], 1e-5)  # every channel of a pixel gets the same value


def test_occlusion_where_the_squares_do_not_tile_the_image_equals_captum():
    """32x32 images: the default 7-px square every 2 px does not tile them ((32 - 7) / 2 = 12.5); both
    place squares at 0, 2, ..., 26, the last one cut off by the border (docs/performance.md)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 13 * 13, 10)
    )
    model = model.double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    a = attribute(model, x, "occlusion", targets=TARGETS)
    assert (a.notes["size"], a.notes["stride"]) == (7, 2)
    ref = Occlusion(lambda inp: model(inp).softmax(1)).attribute(
        x, sliding_window_shapes=(3, 7, 7), strides=(3, 2, 2), baselines=0.5, target=TARGETS, perturbations_per_eval=64
    )
    _close(a.maps, ref[:, 0], 1e-6)  # Captum divides by the counts in float32
    assert a.maps[:, 31].abs().amax() > 0 and a.maps[:, :, 31].abs().amax() > 0  # the last row and column are covered


def test_occlusion_averages_the_squares_covering_each_pixel_up_to_the_border():
    """11x11, a 4-px square every 3 px: squares at 0, 3, 6, 9, the last cut to 2 px by the border.
    Class 0's logit is 10 x the bottom-right pixel, which only the square at (9, 9) covers; each pixel
    that square covers gets its drop divided by the number of squares covering that pixel."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(121, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
        model[2].weight.zero_()
        model[2].bias.zero_()
        model[2].weight[0, 120] = 10.0
    a = attribute(
        model, torch.ones(1, 1, 11, 11), "occlusion", targets=0, occlusion_size=4, occlusion_stride=3, occlusion_fill=0.0
    )
    drop = torch.softmax(torch.tensor([10.0, 0.0]), 0)[0].item() - 0.5
    expected = torch.zeros(11, 11)
    expected[9:, 9:] = torch.tensor([[1 / 4, 1 / 2], [1 / 2, 1.0]]) * drop  # pixel 9 lies under squares 6 and 9, pixel 10 under 9
    torch.testing.assert_close(a.maps[0], expected)


# ------------------------------------------------------------------ targets, streaming, the model untouched


def test_targets_true_predicted_and_n():
    model, x, _ = _model("lenet5")
    labels = torch.tensor([1, 2])
    assert attribute(model, tensor_images(x.float(), labels), "gradient").target_kind == "true class"
    assert attribute(model, x, "gradient", labels=labels, targets="true").targets == [1, 2]
    predicted = attribute(model, x, "gradient", targets="predicted")
    assert predicted.targets == model(x).argmax(1).tolist() and predicted.target_kind == "predicted class"
    assert attribute(model, x, "gradient", targets="4").target_kind == "class 4"
    with pytest.raises(NetsightError, match=r"^--target 12: the model has 10 outputs \(0..9\)$"):
        attribute(model, x, "gradient", targets=12)
    with pytest.raises(NetsightError, match="--target true: these images have no labels"):
        attribute(model, x, "gradient", targets="true")
    with pytest.raises(NetsightError, match="--methods lime: expected a comma list of gradient"):
        attribute(model, x, "lime")
    with pytest.raises(NetsightError, match="--layer fc1: Grad-CAM needs a convolutional layer with spatial maps"):
        attribute(model, x, "gradcam", layer="fc1")
    with pytest.raises(NetsightError, match="integrated gradients method 'simpson': expected one of gausslegendre"):
        attribute(model, x, "integrated_gradients", ig_method="simpson")
    with pytest.raises(NetsightError, match="targets: 3 classes for 2 images"):
        attribute(model, x, "gradient", targets=[1, 2, 3])


def test_streamed_in_batches_equals_all_at_once():
    model, x, _ = _model("cnn-bn")
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    targets = [0, 1, 2]
    few = {"steps": 8, "samples": 3, "occlusion_size": 10, "occlusion_stride": 6}  # 16 squares per image
    whole = attribution_maps(model, x, METHODS, targets=targets, batch_size=64, **few)
    streamed = attribution_maps(model, x, METHODS, targets=targets, batch_size=2, **few)
    for m in METHODS:
        assert whole[m].maps.shape == (3, 28, 28) and whole[m].maps.dtype == torch.float32
        _close(streamed[m].maps, whole[m].maps, 1e-5)


def test_an_image_source_is_streamed_in_batches():
    model, _, _ = _model("lenet5")
    source = tensor_images(torch.rand(10, 1, 28, 28))
    loads: list[int] = []
    load = source._load
    source._load = lambda idx: loads.append(len(idx)) or load(idx)
    a = attribute(model, source, "integrated_gradients", targets="predicted", steps=4, batch_size=4)
    assert a.maps.shape == (10, 28, 28) and max(loads) <= 4 and sum(loads) <= 11  # 4 + 4 + 2, and the first image once


def test_the_model_is_left_exactly_as_it_was():
    model, x, _ = _model("cnn-bn")
    model.train()
    model.conv1.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    hooks = count_hooks(model)
    few = {"steps": 4, "samples": 2, "occlusion_size": 10, "occlusion_stride": 6}
    attribution_maps(model, x, METHODS, targets="predicted", mean=[0.5], std=[0.25], **few)
    assert model.training and all(m.training for m in model.modules())
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert count_hooks(model) == hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN running stats included


def test_normalisation_is_applied_inside_the_model():
    model, x, _ = _model("lenet5")
    mean, std = [0.4], [0.2]
    ours = attribute(model, x, "gradient_x_input", targets=TARGETS, mean=mean, std=std).maps

    def normalised(inp):
        return model((inp - 0.4) / 0.2)

    _close(ours, InputXGradient(normalised).attribute(x, TARGETS).sum(1), 1e-5)


# ------------------------------------------------------------------ netsight inspect --attributions


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_runs):
    """This module's copy of the session's tiny LeNet5 run (the tests write into it)."""
    return tiny_runs.copy("lenet5", tmp_path_factory.mktemp("attr") / "lenet")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("attr-photos")
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


FEW = ["--count", "2", "--ig-steps", "4", "--samples", "2"]


def test_inspect_a_run_directory(run_dir, capsys):
    from safetensors.torch import load_file

    from netsight.cli import main
    from netsight.fileio import read_csv

    assert main(["inspect", str(run_dir), "--attributions", "--target", "predicted", *FEW]) == 0
    rows = read_csv(run_dir / "tables" / "attributions.csv")
    assert [r["method"] for r in rows] == list(METHODS)
    assert {r["target_kind"] for r in rows} == {"predicted class"} and {r["images"] for r in rows} == {"2"}
    by = {r["method"]: r for r in rows}
    assert by["guided_backprop"]["rectified"] == "ReLU x3" and by["gradient"]["rectified"] == ""
    assert float(by["integrated_gradients"]["completeness_error"]) >= 0 and by["gradcam"]["layer"] == "conv2"
    saved = load_file(run_dir / "tables" / "attribution_maps.safetensors")
    assert set(saved) == set(METHODS) | {"image_indices", "targets"}
    assert saved["gradient"].shape == (2, 28, 28) and saved["image_indices"].tolist()[0] == 0 and len(saved["image_indices"]) == 2
    assert (run_dir / "figures" / "attributions.png").stat().st_size > 0

    assert main(["inspect", str(run_dir), "--attributions", "--target", "3", "--methods", "gradcam", "--layer", "conv1"]) == 0
    rows = read_csv(run_dir / "tables" / "attributions.csv")
    assert [(r["method"], r["target_kind"], r["layer"]) for r in rows] == [("gradcam", "class 3", "conv1")]


def test_inspect_a_model_records_the_rectified_non_linearities(photos, tmp_path, capsys):
    from netsight.cli import main
    from netsight.fileio import read_json

    out = tmp_path / "resnet"
    argv = ["inspect", "--model", "torchvision:resnet18", "--images", str(photos), "--input-size", "32", "--out", str(out)]
    assert main([*argv, "--attributions", *FEW, "--methods", "gradient,guided_backprop,occlusion"]) == 0
    record = read_json(out / "inspection.json")["attributions"]
    assert record["rectified"] == ["ReLU x17"] and record["not_rectified"] == [] and record["target"] == "predicted class"


def _one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("netsight: warning")]
    assert len(err) == 1 and err[0].startswith("netsight: error: "), err
    return err[0]


def test_bad_input_is_one_line_and_writes_nothing(run_dir, photos, tmp_path, capsys):
    from netsight.cli import main

    def tree(root):
        return sorted(p.relative_to(root) for p in root.rglob("*")) if root.exists() else []

    before = tree(run_dir)
    model = ["--model", "torchvision:resnet18", "--images", str(photos), "--input-size", "32", "--out", str(tmp_path / "m")]
    cases = [
        ([str(run_dir), "--target", "12"], "--target 12: the model has 10 outputs (0..9)"),
        ([str(run_dir), "--target", "maybe"], "--target maybe: expected true, predicted or a class index"),
        ([str(run_dir), "--methods", "gradient,lime"], "--methods lime: expected a comma list of gradient"),
        ([str(run_dir), "--methods", "gradcam", "--layer", "fc1"], "--layer fc1: Grad-CAM needs a convolutional layer"),
        ([str(run_dir), "--layer", "fc9"], "--layer fc9: not a layer of this model"),
        (model + ["--target", "true"], "--target true: these images have no classes the model knows"),
        (model + ["--target", "1000"], "--target 1000: the model has 1000 outputs (0..999)"),
    ]
    source = tmp_path / "overwrites.py"
    source.write_text(
        "import torch.nn.functional as F\nfrom torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 26 * 26, 10)\n"
        "    def forward(self, x):\n"
        "        y = self.conv(x)\n"
        "        F.relu(y, inplace=True)  # the overwrite, not the returned value, carries the ReLU\n"
        "        return self.fc(y.flatten(1))\n"
    )
    own = ["--model", f"{source}:Net", "--data", "mnist", "--out", str(tmp_path / "m")]
    cases.append((own + ["--methods", "guided_backprop"], "guided backprop: with out-of-place ReLUs the model computes"))
    for extra, message in cases:
        assert main(["inspect", "--attributions", *extra]) == 2, extra
        assert message in _one_line(capsys), extra
    assert tree(run_dir) == before and not (tmp_path / "m").exists()
