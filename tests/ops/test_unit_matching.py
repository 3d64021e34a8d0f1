"""Convergent learning (ops/unit_matching.py, Li et al. 2016): the correlations equal numpy's over every image and
position; a network whose units are reordered is matched back unit for unit at r = 1; and the paper's observation
on two short real trainings: units of two seeds match each other better than an untrained network's units."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from netsight.data.images import tensor_images
from netsight.ops.unit_matching import best_matches, unit_correlations


def small_cnn(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    ).eval()  # fmt: skip


def test_correlations_equal_numpys_over_every_image_and_position():
    a, b = small_cnn(0), small_cnn(1)
    x = torch.rand(11, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    corr = unit_correlations(a, b, tensor_images(x), ["0", "3"], batch_size=4)
    for layer, module in (("0", 2), ("3", 5)):  # each conv read at its ReLU
        with torch.no_grad():
            fa, fb = a[:module](x), b[:module](x)
        rows = lambda f: f.double().permute(0, 2, 3, 1).reshape(-1, f.shape[1]).numpy()  # noqa: E731
        full = np.corrcoef(rows(fa), rows(fb), rowvar=False)[: fa.shape[1], fa.shape[1] :]
        np.testing.assert_allclose(corr[layer].numpy(), np.nan_to_num(full), atol=1e-9)


def test_a_network_with_its_units_reordered_is_matched_back_exactly():
    a = small_cnn(0)
    b = copy.deepcopy(a)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # conv1's units reordered, conv2 reading them in the new order: the same function
        b[0].weight.copy_(a[0].weight[order])
        b[0].bias.copy_(a[0].bias[order])
        b[3].weight.copy_(a[3].weight[:, order])
    x = torch.rand(9, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    best = best_matches(unit_correlations(a, b, tensor_images(x), ["0", "3"])["0"])
    assert best.unit[order].tolist() == list(range(8))  # a's unit order[j] is b's unit j
    assert torch.allclose(best.correlation, torch.ones(8, dtype=torch.float64), atol=1e-9)
    same = best_matches(unit_correlations(a, b, tensor_images(x), ["3"])["3"])
    assert same.unit.tolist() == list(range(16)) and torch.allclose(same.correlation, torch.ones(16, dtype=torch.float64))


STEPS = 120  # per seed, batch 32: the median best matches read conv1 0.74 (untrained 0.68), conv2 0.74 (untrained 0.59)


@pytest.mark.slow  # two real trainings of STEPS steps on MNIST (20 s with MNIST's loading, 2 loaded cores)
def test_two_seeds_learn_units_that_match_better_than_an_untrained_networks():
    """Li et al. 2016: units of independently trained networks have close counterparts in each other; here, on the
    median over units, better than any unit of an untrained network of the same architecture."""
    from netsight.data import load_dataset

    ds = load_dataset("mnist")
    x, y = ds.train_images.float() / 255, ds.train_labels
    nets = []
    for seed in (0, 1):
        net = small_cnn(seed).train()
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        g = torch.Generator().manual_seed(seed)
        for _ in range(STEPS):
            i = torch.randint(0, len(x), (32,), generator=g)
            loss = nn.functional.cross_entropy(net(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets.append(net.eval())
    test = tensor_images(ds.test_images[:300])
    untrained = small_cnn(7)
    for layer, margin in (("0", 0.02), ("3", 0.08)):  # conv1's 8 units barely trained: a small margin
        trained = best_matches(unit_correlations(nets[0], nets[1], test, [layer])[layer]).correlation
        chance = best_matches(unit_correlations(nets[0], untrained, test, [layer])[layer]).correlation
        assert trained.median() > chance.median() + margin, (layer, trained.median(), chance.median())
