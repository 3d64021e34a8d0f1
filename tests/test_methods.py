"""The method objects (netsight/methods.py): the same maps as the functions the command line runs
(`ops.attribution.attribute`) and as Captum's methods, on LeNet5 and on a Normalize-wrapped
torchvision ResNet-18 (random weights, float64, 2 images); every result plots itself; bad input is
refused in Python's words; the checks run no one-image pass of their own; docs/api.md's example runs."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch
from captum import attr as captum
from matplotlib.figure import Figure
from torch import nn

import netsight
from netsight.ops.attribution import attribute, smoothgrad_noise
from netsight.ops.attribution import attribution_maps
from netsight.ops.randomise import cascading
from netsight.ops.similarity import compare, summarise
from netsight.models import ModelConfig, build_model

TARGETS = torch.tensor([3, 7])
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _lenet() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return build_model(ModelConfig("lenet5", (1, 28, 28), 10)).double().eval(), torch.rand(2, 1, 28, 28).double()


@pytest.fixture(scope="module", params=["lenet5", "resnet18"])
def case(request):
    """(the model given to the methods, the model inside, mean, std, images, Grad-CAM's layer, occlusion's size and stride)."""
    torch.set_num_threads(1)
    if request.param == "lenet5":
        model, x = _lenet()
        return model, model, None, None, x, "conv2", (None, None)
    from torchvision.models import resnet18

    torch.manual_seed(0)
    inner = resnet18(weights=None, num_classes=10).double().eval()
    return netsight.Normalize(inner, MEAN, STD), inner, MEAN, STD, torch.rand(2, 3, 32, 32).double(), "layer3", (16, 8)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> None:
    a, b = a.detach().double(), b.detach().double()
    scale = float(b.abs().max())
    assert scale > 0
    assert float((a - b).abs().max()) <= rtol * scale + 1e-12, float((a - b).abs().max()) / scale


def _objects(model: nn.Module, layer: str, size, stride) -> dict[str, netsight.AttributionMethod]:
    return {
        "gradient": netsight.Saliency(model),
        "gradient_x_input": netsight.InputXGradient(model),
        "guided_backprop": netsight.GuidedBackprop(model),
        "deconvnet": netsight.Deconvolution(model),
        "integrated_gradients": netsight.IntegratedGradients(model, steps=4),
        "smoothgrad": netsight.SmoothGrad(model, samples=3, noise=0.1),
        "smoothgrad_squared": netsight.SmoothGradSquared(model, samples=3, noise=0.1),
        "vargrad": netsight.VarGrad(model, samples=3, noise=0.1),
        "gradcam": netsight.GradCAM(model, layer),
        "guided_gradcam": netsight.GuidedGradCAM(model, layer),
        "occlusion": netsight.Occlusion(model, size=size, stride=stride),
    }


def _captum(method: str, model: nn.Module, module: nn.Module, x: torch.Tensor, got: netsight.Maps) -> torch.Tensor:
    if method == "gradient":
        return captum.Saliency(model).attribute(x, TARGETS, abs=False).sum(1)
    if method == "gradient_x_input":
        return captum.InputXGradient(model).attribute(x, TARGETS).sum(1)
    if method == "guided_backprop":
        return captum.GuidedBackprop(model).attribute(x, TARGETS).sum(1)
    if method == "deconvnet":
        return captum.Deconvolution(model).attribute(x, TARGETS).sum(1)
    if method == "integrated_gradients":
        return captum.IntegratedGradients(model).attribute(x, 0.0, TARGETS, n_steps=4, method="gausslegendre").sum(1)
    if method == "smoothgrad":  # the average gradient of the same noisy copies (Captum's NoiseTunnel draws its own noise)
        noise = torch.stack([smoothgrad_noise(x.shape[1:], 3, 0.1, 0, i) for i in range(len(x))], 1)  # [S, N, C, H, W]
        return torch.stack([captum.Saliency(model).attribute(x + n, TARGETS, abs=False) for n in noise]).mean(0).sum(1)
    if method in ("smoothgrad_squared", "vargrad"):  # Hooker et al.'s SG-SQ and VarGrad over the same noisy copies
        noise = torch.stack([smoothgrad_noise(x.shape[1:], 3, 0.1, 0, i) for i in range(len(x))], 1)
        g = torch.stack([captum.Saliency(model).attribute(x + n, TARGETS, abs=False) for n in noise])  # [S, N, C, H, W]
        return (g.square().mean(0) if method == "smoothgrad_squared" else g.var(0, unbiased=False)).sum(1)
    if method == "gradcam":
        cam = captum.LayerGradCam(model, module).attribute(x, TARGETS, relu_attributions=True)
        return captum.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")[:, 0]
    if method == "guided_gradcam":
        return captum.GuidedGradCam(model, module).attribute(x, TARGETS, interpolate_mode="bilinear").sum(1)
    assert method == "occlusion"
    size, stride, c = got.notes["size"], got.notes["stride"], x.shape[1]
    return captum.Occlusion(lambda inp: model(inp).softmax(1)).attribute(
        x, sliding_window_shapes=(c, size, size), strides=(c, stride, stride), baselines=0.5, target=TARGETS
    )[:, 0]  # every channel of a pixel gets the same drop


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")
@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_the_method_objects_give_the_functions_maps_and_captums(case):
    model, inner, mean, std, x, layer, (size, stride) = case
    module = dict(inner.named_modules())[layer]
    for method, obj in _objects(model, layer, size, stride).items():
        got = obj.attribute(x, target=TARGETS)
        assert got.method == method and got.targets == [3, 7] and got.maps.shape == (2, *x.shape[2:])
        settings = dict(steps=4, samples=3, noise=0.1, occlusion_size=size, occlusion_stride=stride)
        same = attribute(inner, x, method, targets=TARGETS, layer=layer, mean=mean, std=std, **settings)  # type: ignore[arg-type]
        assert torch.equal(got.maps, same.maps), method  # one code path: the very same numbers
        _close(got.maps, _captum(method, model, module, x, got))
    assert netsight.GradCAM(model, module).layer == layer  # the layer as a module, Captum's way


# a setting away from its default for every method that has one
OTHER_SETTINGS = {
    "integrated_gradients": {"steps": 5, "baseline": 0.1, "quadrature": "riemann_middle"},
    "smoothgrad": {"samples": 3, "noise": 0.2, "seed": 4},
    "smoothgrad_squared": {"samples": 3, "noise": 0.2, "seed": 4},
    "vargrad": {"samples": 3, "noise": 0.2, "seed": 4},
    "gradcam": {"layer": "conv1"},
    "guided_gradcam": {"layer": "conv1"},
    "occlusion": {"size": 7, "stride": 5, "fill": 0.2},
}


def test_on_another_model_is_the_same_method_with_every_setting():
    """`method.on(model)`, how the sanity checks rebuild every method on each randomised copy (and the seed agreement
    on another seed's model), is the method built on that model directly: every setting and the normalisation kept,
    the other model's maps. Every method, each with settings away from its defaults (the technique walk in
    techniques/test_registry.py runs a few methods only)."""
    from netsight.techniques.attribution_methods import METHOD_CLASSES

    model, x = _lenet()
    model, x = model.float(), x.float()  # float32: the same code, a third of float64's time
    torch.manual_seed(1)
    other = build_model(ModelConfig("lenet5", (1, 28, 28), 10)).eval()
    assert set(OTHER_SETTINGS) <= set(METHOD_CLASSES)
    for name, cls in METHOD_CLASSES.items():
        settings = OTHER_SETTINGS.get(name, {})
        method = cls(netsight.Normalize(model, (0.4,), (0.3,)), batch_size=5, **settings)
        moved = method.on(other)  # an unwrapped model gets the method's normalisation
        direct = cls(netsight.Normalize(other, (0.4,), (0.3,)), batch_size=5, **settings)
        assert type(moved) is cls and moved.inner is other and moved._settings() == method._settings(), name
        assert (moved.mean, moved.std, moved.batch_size) == ((0.4,), (0.3,), 5), name
        maps = moved.attribute(x, TARGETS).maps
        assert torch.equal(maps, direct.attribute(x, TARGETS).maps), name
        assert not torch.equal(maps, method.attribute(x, TARGETS).maps), name  # the other model's, not the first's


def test_target_int_list_tensor_and_predicted():
    model, x = _lenet()
    s = netsight.Saliency(model)
    assert s.attribute(x, target=4).targets == [4, 4] and s.attribute(x, target=4).target_kind == "class 4"
    assert torch.equal(s.attribute(x, target=[3, 7]).maps, s.attribute(x, target=TARGETS).maps)
    predicted = s.attribute(x)
    assert predicted.targets == model(x).argmax(1).tolist() and predicted.target_kind == "predicted class"


def test_bad_input_is_refused_in_pythons_words():
    model, x = _lenet()
    cases = [
        (lambda: netsight.GradCAM(model, "conv9"), r"^layer='conv9': not a layer of this model; did you mean conv2, conv1\?$"),
        (lambda: netsight.GradCAM(model, nn.Conv2d(1, 1, 1)), r"^layer=Conv2d\(\.\.\.\): not a submodule of the model$"),
        (lambda: netsight.GradCAM(model, "fc1").attribute(x, 1), r"^layer='fc1': Grad-CAM needs a convolutional layer"),
        (lambda: netsight.Saliency(model).attribute(x, target=12), r"^target=12: the model has 10 outputs \(0..9\)$"),
        (lambda: netsight.GuidedBackprop(model).attribute(x, target=[1, 10]), r"^target=10: the model has 10 outputs"),
        (lambda: netsight.Occlusion(model).attribute(x, target=10), r"^target=10: the model has 10 outputs"),
        (lambda: netsight.Saliency(model).attribute(x, target=-1), r"^target=-1: a class index is 0 or more$"),
        (lambda: netsight.Saliency(model).attribute(x, target=[1, 2, 3]), r"^target: 3 classes for 2 images$"),
        (lambda: netsight.Saliency(model).attribute(x, target="true"), r"^target='true': expected a class index"),
        (lambda: netsight.IntegratedGradients(model, steps=0), r"^steps=0: expected an integer >= 1$"),
        (lambda: netsight.IntegratedGradients(model, quadrature="simpson"), r"quadrature='simpson'.*expected one of gauss"),
        (lambda: netsight.SmoothGrad(model, samples=0), r"^samples=0: expected an integer >= 1$"),
        (lambda: netsight.Saliency(model, batch_size=0), r"^batch_size=0: expected an integer >= 1$"),
        (lambda: netsight.Normalize(model, MEAN, STD), r"^mean/std: 3/3 values, the model takes 1 input channel"),
        (lambda: netsight.sanity_checks(netsight.Saliency(model), x, modes=["all"]), r"^modes=\['all'\]: expected some of"),
        (lambda: netsight.seed_agreement(netsight.Saliency(model), [model], x, 1), r"^models: 1 given; seed agreement needs two"),
        (
            lambda: netsight.plot_maps([netsight.Saliency(model).attribute(x, 1), netsight.GradCAM(model).attribute(x, 2)]),
            r"^plot_maps: the results must be maps of the same images for the same classes",
        ),
    ]
    for call, message in cases:
        with pytest.raises(netsight.NetsightError, match=message) as e:
            call()
        assert "--" not in str(e.value), str(e.value)  # argument names, not command-line flags


def test_a_call_runs_no_one_image_pass_and_the_relu_rules_check_once():
    """The checks ride on the real passes: Grad-CAM and the gradient family put only the batch through the
    model; a ReLU rule checks the first image (plain and ruled) on an object's first call only."""
    model, x = _lenet()
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    try:
        netsight.Saliency(model).attribute(x, target=1)
        netsight.GradCAM(model).attribute(x, target=1)
        assert sizes == [2, 2]
        sizes.clear()
        guided = netsight.GuidedBackprop(model)
        first, second = guided.attribute(x, target=1), guided.attribute(x, target=1)
        assert sizes == [1, 1, 2, 2]  # the first image plain and ruled, then each call's batch
        assert first.notes["rectified"] == second.notes["rectified"] == ["ReLU x3"]
    finally:
        handle.remove()


def test_every_result_plots_itself_and_the_checks_match_the_analysis():
    model, x = _lenet()
    methods = [netsight.Saliency(model), netsight.GradCAM(model)]
    for r in [m.attribute(x, target=TARGETS) for m in methods]:
        assert isinstance(r.plot(), Figure)
    assert isinstance(netsight.plot_maps([m.attribute(x, TARGETS) for m in methods]), Figure)
    sanity = netsight.sanity_checks(methods, x, target=TARGETS, max_layers=2, draws=1)  # one draw: rows over images
    # the maps are the command line's function's, on the trained model and on each cascading copy
    twins = [twin for _, twin in itertools.islice(cascading(model, 0), 2)]
    for depth, twin in enumerate([model, *twins]):
        found = attribution_maps(twin, x, ["gradient", "gradcam"], targets="true", labels=TARGETS)
        for m in ("gradient", "gradcam"):
            got = sanity.result.originals[m] if depth == 0 else sanity.result.cascade[m][depth - 1]
            assert torch.equal(got, found[m].maps.float()), (m, depth)
            if depth:
                row = next(r for r in sanity.rows if (r.method, r.mode, r.depth, r.metric) == (m, "cascading", depth, "spearman"))
                expected = summarise(compare(sanity.result.originals[m], got, ["spearman"])["spearman"])
                assert (row.mean, row.lo, row.hi, row.n) == pytest.approx(
                    (expected.mean, max(-1, expected.lo), min(1, expected.hi), expected.n),
                    nan_ok=True,  # clipped to the range
                )
    assert isinstance(sanity.plot(), Figure) and isinstance(sanity.plot_grid(), Figure)
    faith = netsight.faithfulness(methods, x, target=TARGETS, steps=4)
    assert {row[0] for row in faith.rows} == {"gradient", "gradcam", "random", "sobel"}
    assert isinstance(faith.plot(), Figure)
    other = build_model(ModelConfig("lenet5", (1, 28, 28), 10)).double().eval()  # another seed's model
    agree = netsight.seed_agreement(netsight.Saliency(model), [model, other], x, target=TARGETS)
    assert [(r.method, r.metric, r.seeds) for r in agree.rows] == [("gradient", "spearman", 2), ("gradient", "spearman_abs", 2)]
    assert isinstance(agree.plot(), Figure)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_docs_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks, "docs/api.md has no python example"
    monkeypatch.chdir(tmp_path)
    import matplotlib

    matplotlib.use("Agg")
    for code in blocks:
        exec(compile(code, str(DOCS), "exec"), {"__name__": "docs_example"})
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_recurrent_techniques_are_public_and_plot_themselves():
    torch.manual_seed(0)
    model = build_model(ModelConfig("lstm", (1, 28, 28), 10, hidden=8)).eval()
    images, labels = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    steps = netsight.run_steps(model, images)
    assert steps.hidden.shape == (6, 28, 8) and set(steps.gates) >= {"input", "forget", "output"}
    assert netsight.unit_stats(model, images, labels).top_images.shape[0] == 8
    rows = netsight.row_importance(model, images, labels, steps=4)
    assert rows.scores["integrated_gradients"].shape == (6, 28) and rows.per_class("occlusion").shape == (10, 28)
    paths = netsight.trajectories(model, images, labels)
    assert paths.path.shape == (6, 28, 2)
    assert isinstance(rows.plot(), Figure) and isinstance(paths.plot(), Figure)
    import matplotlib.pyplot as plt

    plt.close("all")
