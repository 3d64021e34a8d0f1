"""Feature visualisation (Olah, Mordvintsev & Schubert, Distill 2017) on netsight's own LeNet5: the paper's result that
an image optimised for a unit drives it harder than the natural images do, the same seed giving the same images, the
files it declares, and bad input refused before anything is written."""

from __future__ import annotations

import pytest
import torch

from netsight.cli import main
from netsight.fileio import read_csv
from netsight.techniques.featureviz import FourierImage, feature_visualisation
from netsight.train import open_run


def _lenet5(tiny_runs):
    model = open_run(tiny_runs.path("lenet5")).model().eval()
    return model, tiny_runs.data("lenet5").test_images.float() / 255


@pytest.mark.slow  # 256 steps for 6 units: ~12 s
def test_the_optimised_image_drives_its_unit_harder_than_any_test_image(tiny_runs):
    """The paper's qualitative result on the session's trained LeNet5 (12 iterations on the tiny course-shaped data):
    with the default 256 steps, for 5 of conv2's first 6 units the optimised image's mean activation is above the
    strongest of the 100 test images' and the sixth ties it (-0.039 both; 2 of 6 after 64 steps, 6 of 6 after 512,
    measured); the test asks for at least 5 of 6."""
    model, x = _lenet5(tiny_runs)
    r = feature_visualisation(model, x, "conv2", maps=6, steps=256, seed=0)
    assert r.images.shape == (6, 1, 28, 28) and float(r.images.min()) >= 0 and float(r.images.max()) <= 1
    best = r.example_activations[:, 0]
    assert int((r.activations > best).sum()) >= 5, (r.activations, best)
    # the examples are the strongest test images on the same measure, strongest first
    assert torch.all(r.example_activations[:, :-1] >= r.example_activations[:, 1:])
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())  # only the image moved
    assert all(p.requires_grad for p in model.parameters())  # and the model is as it was


def test_the_same_seed_gives_the_same_images_and_another_seed_others(tiny_runs):
    model, x = _lenet5(tiny_runs)
    a, b = (feature_visualisation(model, x, "conv1", maps=2, steps=4, seed=3) for _ in range(2))
    c = feature_visualisation(model, x, "conv1", maps=2, steps=4, seed=4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_the_parameterisation_is_a_1_over_f_spectrum_in_the_unit_interval():
    image = FourierImage(2, 3, 16, 12, torch.Generator().manual_seed(0))
    pixels = image().detach()
    assert pixels.shape == (2, 3, 16, 12) and float(pixels.min()) > 0 and float(pixels.max()) < 1
    assert image.scale[0, 0] == image.scale.max() and image.scale[8, 6] == image.scale.min()  # DC largest, Nyquist least


@pytest.mark.slow  # the CLI: ~10 s
def test_inspect_writes_the_figure_and_table_and_refuses_a_bad_layer(tiny_runs, tmp_path, capsys):
    run = tiny_runs.copy("lenet5", tmp_path / "run")
    before = sorted(p.name for p in run.rglob("*"))
    assert main(["inspect", str(run), "--featureviz", "--layer", "conv9", "--quiet"]) == 2
    assert "--layer conv9" in capsys.readouterr().err and sorted(p.name for p in run.rglob("*")) == before
    assert main(["inspect", str(run), "--featureviz", "--layer", "conv2", "--maps", "3", "--steps", "16", "--quiet"]) == 0
    rows = read_csv(run / "tables" / "featureviz_conv2.csv")
    assert [r["unit"] for r in rows] == ["0", "1", "2"] and {r["steps"] for r in rows} == {"16"}
    assert (run / "figures" / "featureviz_conv2.png").stat().st_size > 0


def test_the_diversity_term_pushes_a_units_images_apart(tiny_runs):
    """Olah et al.'s diversity term: with it, a unit's variants' Gram matrices (at the layer optimised) are less alike
    than the same variants optimised without it, from the same seed. The session's LeNet5 has trained 12 iterations
    and its conv2 responds weakly, so the term needs a large weight here (20); on the study's LeNet5 (5,500
    iterations) weight 1 took conv2's first 3 units' similarity from 0.997-1.000 to 0.36-0.94 at 48 steps."""
    from netsight.techniques.featureviz import _layer_output, gram_similarity

    model, x = _lenet5(tiny_runs)
    similarity = {}
    for diversity in (0.0, 20.0):
        r = feature_visualisation(model, x, "conv2", maps=3, steps=48, seed=0, variants=3, diversity=diversity)
        assert r.variants is not None and r.variants.shape == (3, 3, 1, 28, 28) and torch.equal(r.images, r.variants[:, 0])
        assert r.variant_activations is not None and torch.equal(r.activations, r.variant_activations[:, 0])
        with torch.no_grad():
            similarity[diversity] = gram_similarity(_layer_output(model, "conv2", r.variants.flatten(0, 1)), 3)
    assert float(similarity[20.0].mean()) < float(similarity[0.0].mean()) - 0.1, similarity
    with pytest.raises(Exception, match="variants 0"):
        feature_visualisation(model, x, "conv2", maps=1, steps=1, variants=0)
