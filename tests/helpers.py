"""Helpers several test modules share (test modules never import each other): small models with a
known behaviour, and the autograd pieces the reference computations are built from."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


class Exploding(nn.Module):
    """A conv layer and a ReLU, then forward raises: hooks must be removed all the same."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.relu1 = nn.ReLU()

    def forward(self, x):
        self.relu1(self.conv1(x))
        raise RuntimeError("boom")


class RectifiedBackward(torch.autograd.Function):
    """ReLU whose backward rectifies the incoming signal instead of gating by the input (the deconvnet's
    rule, written independently of netsight for the references)."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


class RectifiedReLU(nn.Module):
    def forward(self, x):
        return RectifiedBackward.apply(x)


def swap_relus(model: nn.Module) -> nn.Module:
    """A copy of the model with every nn.ReLU replaced by RectifiedReLU: autograd through it is the
    deconvnet's projection (the oracle the deconvnet tests compare with)."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, name, RectifiedReLU())
    return model


# ------------------------------------------------------------------ synthetic raw values of the trust checks (CONTRACTS §1)


def sanity_values(
    method="gradient",
    level=0.1,
    spread=0.05,
    draws=4,
    images=12,
    depths=3,
    seeds=(0,),
    fg_level=None,
    chance_rm=0.6,
    last=None,
    constant=(),
    permuted=None,
    rng_seed=0,
):
    """Rows of sanity_values.csv: cascading values around `level` (the deepest depth at `last` if given),
    a foreground region around `fg_level`, the three chance levels, permuted-label rows around `permuted`;
    images in `constant` have no value (a constant map)."""
    rng = np.random.default_rng(rng_seed)
    rows = []

    def add(seed, mode, layer, depth, draw, image, region, value):
        v = "" if image in constant else float(np.clip(value, -1, 1))
        rows.append(
            dict(method=method, mode=mode, layer=layer, depth=str(depth), draw=str(draw), image=str(image), region=region,
                 metric="spearman_abs", value=str(v), seed=seed)
        )  # fmt: skip

    regions = [("all", level)] + ([("foreground", fg_level)] if fg_level is not None else [])
    for seed in seeds:
        for region, lv in regions:
            for d in range(draws):
                for i in range(images):
                    for depth in range(1, depths + 1):
                        mu = last if (last is not None and depth == depths) else lv
                        add(seed, "cascading", f"l{depth}", depth, d, i, region, mu + rng.normal(0, spread))
                    add(seed, "chance: random models", f"l{depths}", depths, d, i, region, chance_rm + rng.normal(0, 0.05))
            for i in range(images):
                add(seed, "chance: input", "", 0, 0, i, region, 0.2 + rng.normal(0, 0.05))
                add(seed, "chance: edges", "", 0, 0, i, region, 0.3 + rng.normal(0, 0.05))
                if permuted is not None:
                    add(seed, "permuted labels", "", 0, 0, i, region, permuted + rng.normal(0, spread))
    return rows


def faith_values(own: float, spread: float = 0.03, images: int = 12, rng_seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(rng_seed)
    rows = []
    for i in range(images):
        base = rng.uniform(0.2, 0.4)  # the image's own difficulty, shared by every map: the pairing removes it
        for m, off in (("gradient", own), ("random", 0.3), ("sobel", 0.15)):
            auc = float(np.clip(base + off + rng.normal(0, spread), 0, 1))
            rows.append(dict(method=m, curve="deletion", image=str(i), auc=str(auc), seed=0))
    return rows


def agreement_values(level: float, seeds=(0, 1, 2), images=12, spread=0.05) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for a in seeds:
        for b in seeds:
            if a < b:
                for i in range(images):
                    v = float(np.clip(level + rng.normal(0, spread), -1, 1))
                    rows.append(dict(method="gradient", metric="spearman_abs", seed_a=str(a), seed_b=str(b), image=str(i),
                                     region="all", value=str(v)))  # fmt: skip
    return rows


# ------------------------------------------------------------------ the dataset pass (ops/dataset_pass.py) and its Ray split
K = 4


def tied_net() -> nn.Sequential:
    """Weights in {-1, 0, 1} and no biases on images of 0s and 1s: every activation is a small whole
    number, exact in float32 whatever the order of the sums, so ties are many and exact."""
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(5 * 2 * 2, 3, bias=False),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-1, 2, p.shape, generator=g).float())
    return net.eval()


def binary_images(n: int = 37) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return (torch.rand(n, 1, 10, 10, generator=g) < 0.3).to(torch.uint8) * 255


def brute_force(net: nn.Sequential, images: torch.Tensor, module: int, k: int):
    """Every image's activations at once; per map each image's first strongest unit (numpy's argmax, raster
    order), then the k best by (value descending, image ascending) with numpy's lexsort."""
    with torch.no_grad():
        acts = net[: module + 1](images.float() / 255).numpy()  # [N, maps, H, W]
    n, maps, _, w = acts.shape
    flat = acts.reshape(n, maps, -1)
    best, where = flat.max(2), flat.argmax(2)  # [N, maps]
    out = []
    for m in range(maps):
        order = np.lexsort((np.arange(n), -best[:, m]))[:k]
        out.append((best[order, m], order, np.stack([where[order, m] // w, where[order, m] % w], -1)))
    return out


def assert_equals_brute_force(state, net, images):
    """`state` (a `UnitTopK`) ranks conv 0 and conv 3 of `tied_net` as `brute_force` does, ties included."""
    for name, module in (("0", 1), ("3", 4)):  # each conv is ranked at the ReLU right after it
        top = state.layers[name]
        assert top.target == str(module)
        for m, (values, index, positions) in enumerate(brute_force(net, images, module, K)):
            assert top.values[m].tolist() == values.tolist()
            assert top.images[m].tolist() == index.tolist()
            assert top.positions[m].tolist() == positions.tolist()
