"""Every attribution method of netsight (ops/attribution.py) timed against Captum's
implementation of the same method, on the same model and images, in the same run.

    python benchmarks/bench_attribution.py [--threads 1] [--repeats 3] [--models lenet5,resnet18] [--size 64] [--json FILE]

Models, with random weights (the cost of an attribution does not depend on what the weights
learned): LeNet5 and cnn-bn at 1x28x28 (64 images), torchvision's resnet18(weights=None, 10
classes) at 3x64x64 (16 images; `--size` sets its side); random images in [0, 1], each explaining
a fixed class. netsight's side is the public method object (`netsight.Saliency(model)`,
`netsight.GradCAM(model, layer)`, ...), built once per model and method before the timing, as a
notebook builds it once and calls it on many batches (its first call, the warm-up, is the one
that checks a ReLU rule on the first image); Captum's objects are built inside each call, which
costs them nothing measurable. Both
sides put the same number of images through each forward pass: netsight's `batch_size` = the
number of images, Captum's `internal_batch_size` (integrated gradients), `nt_samples_batch_size=1`
(SmoothGrad: one noisy copy of every image per pass) and `perturbations_per_eval` (occlusion:
about as many occluded copies per pass as netsight's 4 x batch). The settings are netsight's
defaults: 32 Gauss-Legendre steps from a black baseline (Captum also asked for its convergence
delta, which netsight always reports), 16 SmoothGrad samples of noise 0.15, Grad-CAM on the last
convolution upsampled bilinearly, occlusion with a grey (0.5) square of 6/28 of the height every
2/28 on the softmax probability. Each side is timed best of `--repeats` rounds after one warm-up,
the two alternating round by round; milliseconds per image and the ratio netsight / Captum (below 1: netsight
is faster). "agree" is the largest |netsight - Captum| over the largest |Captum| of the maps
(Captum's summed over input channels; for occlusion, which gives every channel the same value, one channel); SmoothGrad draws different noise on the two sides, so its
maps are not compared.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from netsight.ops.attribution import METHODS
from netsight.ops.stages import conv_layers
from netsight.methods import METHOD_CLASSES, AttributionMethod
from netsight.models import ModelConfig, build_model

STEPS, SAMPLES, NOISE = 32, 16, 0.15
NOISY = {
    "smoothgrad": "smoothgrad",
    "smoothgrad_squared": "smoothgrad_sq",
    "vargrad": "vargrad",
}  # Captum's nt_type; other noise: timed only


def models(size: int = 64) -> list[tuple[str, nn.Module, tuple[int, int, int], int]]:
    import torchvision

    torch.manual_seed(0)
    return [
        ("lenet5", build_model(ModelConfig("lenet5", (1, 28, 28), 10)).eval(), (1, 28, 28), 64),
        ("cnn-bn", build_model(ModelConfig("cnn-bn", (1, 28, 28), 10)).eval(), (1, 28, 28), 64),
        ("resnet18", torchvision.models.resnet18(weights=None, num_classes=10).eval(), (3, size, size), 16),
    ]


def netsight_method(method: str, model: nn.Module, layer: str, n: int) -> AttributionMethod:
    """netsight's method object with its defaults (SmoothGrad's noise as Captum's), the whole batch at once."""
    cls = METHOD_CLASSES[method]
    noisy = dict(samples=SAMPLES, noise=NOISE)
    own = {"integrated_gradients": dict(steps=STEPS), **{m: noisy for m in NOISY}}.get(method, {})
    if method in ("gradcam", "guided_gradcam"):
        own = dict(layer=layer)
    return cls(model, batch_size=n, **own)  # type: ignore[arg-type]


def netsight_call(method: str, model: nn.Module, layer: str, x: torch.Tensor, t: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The method object built once, called on the batch; the maps [N,H,W]."""
    obj = netsight_method(method, model, layer, len(x))
    return lambda: obj.attribute(x, target=t).maps


def captum_call(method: str, model: nn.Module, layer: nn.Module, x: torch.Tensor, t: torch.Tensor) -> Callable[[], torch.Tensor]:
    """Captum's implementation of `method`, set up like netsight's (see the module doc); the maps [N,H,W]."""
    from captum import attr

    n, (c, h, _) = len(x), x.shape[1:]
    size, stride = max(1, round(6 * h / 28)), max(1, round(2 * h / 28))
    probabilities = nn.Sequential(model, nn.Softmax(1)).eval()
    calls: dict[str, Callable[[], torch.Tensor]] = {
        "gradient": lambda: attr.Saliency(model).attribute(x, target=t, abs=False),
        "gradient_x_input": lambda: attr.InputXGradient(model).attribute(x, target=t),
        "guided_backprop": lambda: attr.GuidedBackprop(model).attribute(x, target=t),
        "integrated_gradients": lambda: attr.IntegratedGradients(model).attribute(
            x,
            baselines=0.0,
            target=t,
            n_steps=STEPS,
            method="gausslegendre",
            internal_batch_size=n,
            return_convergence_delta=True,
        )[0],  # fmt: skip
        **{
            m: (
                lambda kind=kind: attr.NoiseTunnel(attr.Saliency(model)).attribute(
                    x, nt_type=kind, nt_samples=SAMPLES, nt_samples_batch_size=1, stdevs=NOISE, target=t, abs=False
                )
            )
            for m, kind in NOISY.items()
        },
        "gradcam": lambda: attr.LayerAttribution.interpolate(
            attr.LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True), (h, h), "bilinear"
        ),
        "guided_gradcam": lambda: attr.GuidedGradCam(model, layer).attribute(x, target=t, interpolate_mode="bilinear"),
        "deconvnet": lambda: attr.Deconvolution(model).attribute(x, target=t),
        "occlusion": lambda: attr.Occlusion(probabilities).attribute(
            x,
            sliding_window_shapes=(c, size, size),
            strides=(c, stride, stride),
            baselines=0.5,
            target=t,
            perturbations_per_eval=4,  # 4 x n copies per pass: netsight evaluates up to 4 x batch
        ),  # fmt: skip
    }
    # occlusion gives every channel of a pixel the same drop: one channel is the map (a sum would be C times it)
    return lambda: calls[method]().detach()[:, 0] if method == "occlusion" else calls[method]().detach().sum(1)


def best_ms(ours: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor], repeats: int):
    """(netsight's best ms, Captum's best ms, netsight's maps, Captum's maps): one warm-up each (oneDNN
    primitives, Captum's hooks), then the two alternating, so a busy moment of the machine hits both."""
    out = [ours(), theirs()]
    times: list[list[float]] = [[], []]
    for _ in range(repeats):
        for i, fn in enumerate((ours, theirs)):
            start = time.perf_counter()
            out[i] = fn()
            times[i].append(time.perf_counter() - start)
    return 1000 * min(times[0]), 1000 * min(times[1]), out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="lenet5,cnn-bn,resnet18")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--size", type=int, default=64, help="ResNet-18's input side in pixels (64)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for flag in ("threads", "repeats", "size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}: expected a whole number of at least 1, got {getattr(args, flag)}")
    import captum

    # Captum's notices that it set requires_grad on the inputs and hooks on the ReLUs (what it is asked to do)
    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
    warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
    torch.set_num_threads(args.threads)
    load_before = _loadavg()
    print(f"load average before: {load_before}")
    wanted, methods = args.models.split(","), args.methods.split(",")
    print(
        f"torch {torch.__version__}, captum {captum.__version__}, torch.set_num_threads({args.threads}); "
        f"ms per image, best of {args.repeats}"
    )
    print(f"  {'model':9} {'method':21} {'netsight':>9} {'captum':>9} {'ratio':>6}  agree")
    rows = []
    for name, model, shape, n in models(args.size):
        if name not in wanted:
            continue
        g = torch.Generator().manual_seed(0)
        x = torch.rand(n, *shape, generator=g)
        with torch.no_grad():
            t = model(x).argmax(1)
        layer_name = conv_layers(model)[-1]
        layer = dict(model.named_modules())[layer_name]
        for method in methods:
            ours = netsight_call(method, model, layer_name, x, t)
            theirs = captum_call(method, model, layer, x, t)
            a_ms, b_ms, a, b = best_ms(ours, theirs, args.repeats)
            agree: Optional[float] = None
            if method not in NOISY:
                agree = float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
            row = {
                "model": name,
                "input": list(shape),
                "images": n,
                "method": method,
                "netsight_ms_per_image": a_ms / n,
                "captum_ms_per_image": b_ms / n,
                "ratio": a_ms / b_ms,
                "agree": agree,
            }
            rows.append(row)
            print(
                f"  {name:9} {method:21} {a_ms / n:9.2f} {b_ms / n:9.2f} {a_ms / b_ms:6.2f}  "
                f"{'-' if agree is None else f'{agree:.1e}'}",
                flush=True,
            )
    ratios = [r["ratio"] for r in rows]
    if ratios:
        print(f"ratio netsight/captum: {min(ratios):.2f} to {max(ratios):.2f}")
    print(f"load average after: {_loadavg()}")
    if args.json:
        meta = {"torch": torch.__version__, "captum": captum.__version__, "threads": args.threads, "repeats": args.repeats}
        meta["netsight_side"] = "method objects (netsight.methods), built once per model and method"
        meta["loadavg_before"] = load_before
        meta["loadavg_after"] = _loadavg()
        meta["machine"] = platform.processor() or platform.machine()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(meta, rows=rows), indent=2) + "\n")


def _loadavg() -> Optional[str]:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


if __name__ == "__main__":
    main()
