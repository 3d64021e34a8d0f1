"""Deletion and insertion (Petsiuk et al. 2018) on a model whose evidence is known exactly, and the
baselines; seed agreement (techniques/agreement.py) on maps whose relation is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from netsight.techniques.agreement import per_image, seed_agreement
from netsight.techniques.faithfulness import blurred, curves, faithfulness, importance_ranks, sobel_maps


def _evidence_model(side: int = 8, x=None) -> tuple[nn.Module, torch.Tensor]:
    """Class 0's logit minus class 1's is sum(w * x) - b: the exact evidence of each pixel is w * x.
    With images `x`, b is the mean evidence of their blurred copies (the insertion canvas), so that
    insertion starts near p = 0.5 rather than saturated."""
    g = torch.Generator().manual_seed(0)
    w = torch.rand(side * side, generator=g) ** 4  # a few pixels carry most of the evidence
    lin = nn.Linear(side * side, 2)
    b = 0.0 if x is None else float((blurred(x).flatten(1) @ w).mean())
    with torch.no_grad():
        lin.weight[:] = torch.stack([w, -w]) / 2
        lin.bias[:] = torch.tensor([-b / 2, b / 2])
    return nn.Sequential(nn.Flatten(), lin).eval(), w.view(side, side)


def test_a_perfect_attribution_beats_random_on_deletion_and_insertion():
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    model, w = _evidence_model(8, x)
    perfect = w * x[:, 0]
    r = faithfulness(model, x, {"perfect": perfect}, [0] * 6, steps=16)
    assert r.fractions.tolist() == pytest.approx([k / 16 for k in range(17)])
    d, i = r.auc["perfect"]["deletion"], r.auc["random"]["deletion"]
    assert (d < i).all() and d.mean() < i.mean() - 0.05
    assert (r.auc["perfect"]["insertion"] > r.auc["random"]["insertion"]).all()
    c = r.curves["perfect"]["deletion"]
    logit = (w * x[:, 0]).sum((1, 2)) - 2 * model[1].bias[1].detach()
    assert c.shape == (6, 17) and torch.allclose(c[:, 0], torch.sigmoid(logit), atol=1e-6)
    p_black = torch.sigmoid(-2 * model[1].bias[1].detach())
    assert torch.allclose(c[:, -1], p_black.expand(6))  # everything removed: the black image's p
    # the area is the trapezoid rule over the fraction of pixels
    assert r.auc["perfect"]["deletion"][0].item() == pytest.approx(np.trapezoid(c[0].numpy(), r.fractions.numpy()))
    names = [row[0] for row in r.rows()]
    assert names == ["perfect", "perfect", "random", "random", "sobel", "sobel"]


def test_the_order_is_most_important_first_and_ties_are_seeded():
    m = torch.tensor([[[0.0, 3.0], [1.0, 3.0]]])
    ranks = importance_ranks(m, seed=0)[0].tolist()
    assert sorted(ranks[i] for i in (1, 3)) == [0, 1] and ranks[2] == 2 and ranks[0] == 3
    assert importance_ranks(-m, order="absolute", seed=0).tolist() == importance_ranks(m, seed=0).tolist()
    model, _ = _evidence_model(2)
    out = curves(model, torch.ones(1, 1, 2, 2), m, [0], steps=4)
    assert out["deletion"].shape == (1, 5) and out["insertion"][0, -1] == pytest.approx(out["deletion"][0, 0].item())


def test_sobel_is_the_edge_magnitude():
    x = torch.zeros(1, 1, 6, 6)
    x[..., 3:] = 1.0  # a vertical edge between columns 2 and 3
    s = sobel_maps(x)[0]
    assert s[:, 2:4].min() == pytest.approx(4.0) and s[:, 0].max() == 0 and s[:, 5].max() == 0


def test_seed_agreement_is_the_mean_over_seed_pairs_per_image():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(5, 6, 6, generator=g)
    runs = [{"m": base + 0.3 * torch.randn(5, 6, 6, generator=g)} for _ in range(3)]
    values = per_image([r["m"] for r in runs])
    by_hand = [
        np.mean([spearmanr(runs[a]["m"][i].flatten(), runs[b]["m"][i].flatten()).statistic for a, b in ((0, 1), (0, 2), (1, 2))])
        for i in range(5)
    ]
    assert np.allclose(values.numpy(), by_hand)
    (signed, absolute) = seed_agreement(runs)
    assert (signed.method, signed.metric, signed.seeds, signed.pairs, signed.n) == ("m", "spearman", 3, 3, 5)
    assert signed.mean == pytest.approx(float(np.mean(by_hand))) and signed.lo < signed.mean < signed.hi
    assert absolute.metric == "spearman_abs" and seed_agreement(runs[:1]) == []
    assert math.isnan(per_image([torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)])[0])
