"""ROAR/KAR masks (ops/masking.py): exactly the asked fraction of each image's pixels replaced by the training mean,
the top-ranked (ROAR) or the bottom-ranked (KAR), ties broken at random rather than in raster order."""

from __future__ import annotations

import pytest
import torch

from netsight.ops import masking


def _maps(n=5, h=7, w=9, seed=0):
    return torch.randn(n, h, w, generator=torch.Generator().manual_seed(seed))


def test_pixel_order_ranks_by_magnitude_most_important_first():
    maps = _maps()
    order = masking.pixel_order(maps)
    flat = maps.abs().reshape(len(maps), -1)
    ranked = torch.gather(flat, 1, order)
    assert bool((ranked[:, :-1] >= ranked[:, 1:]).all())
    assert all(sorted(row.tolist()) == list(range(flat.shape[1])) for row in order)  # a permutation per image


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_roar_replaces_exactly_the_top_fraction_and_kar_keeps_exactly_the_top_rest(fraction):
    maps = _maps(n=6, h=28, w=28)
    order = masking.pixel_order(maps)
    p = 28 * 28
    k = round(fraction * p)
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    fill = torch.tensor([117], dtype=torch.uint8)
    for mode in ("roar", "kar"):
        mask = masking.replaced(order, mode, fraction)
        assert mask.sum(1).tolist() == [k] * 6  # exactly the fraction, every image
        top = torch.zeros_like(mask).scatter_(1, order[:, : p - k] if mode == "kar" else order[:, :k], True)
        if mode == "roar":
            assert torch.equal(mask, top)  # the top-ranked k replaced
        else:
            assert torch.equal(~mask, top)  # the top-ranked p - k kept, the rest replaced
        out = masking.apply_mask(images, mask, fill)
        flat_in, flat_out = images.view(6, -1), out.view(6, -1)
        assert bool((flat_out[mask] == 117).all())  # replaced by the mean
        assert torch.equal(flat_out[~mask], flat_in[~mask])  # everything else untouched
    assert masking.replaced_count(p, fraction) == k


def test_every_channel_of_a_replaced_pixel_gets_its_channel_mean():
    images = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8)
    fill = masking.fill_value(images)
    assert fill.tolist() == images.float().mean(dim=(0, 2, 3)).round().to(torch.uint8).tolist()
    mask = torch.zeros(3, 16, dtype=torch.bool)
    mask[:, 5] = True
    out = masking.apply_mask(images, mask, fill)
    assert out[:, :, 1, 1].tolist() == [fill.tolist()] * 3


def test_ties_are_broken_at_random_not_in_raster_order():
    flat = torch.zeros(200, 28, 28)  # a map with no information: every pixel tied
    mask = masking.replaced(masking.pixel_order(flat), "roar", 0.1)
    per_pixel = mask.float().mean(0).view(28, 28)
    assert float(per_pixel[:3].mean()) < 0.2  # raster order would replace the top 3 rows of every image (1.0)
    assert 0.07 < float(per_pixel.mean()) < 0.13


def test_random_order_is_a_fixed_permutation_per_image():
    a, b = masking.random_order(4, 50, seed=3), masking.random_order(4, 50, seed=3)
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])
    assert all(sorted(r.tolist()) == list(range(50)) for r in a)


def test_masks_pack_to_bits_and_back():
    mask = torch.rand(7, 784) < 0.3
    bits = masking.pack(mask)
    assert bits.dtype == torch.uint8 and bits.shape == (7, 98)
    assert torch.equal(masking.unpack(bits, 784), mask)
