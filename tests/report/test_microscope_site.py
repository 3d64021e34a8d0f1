"""`netsight microscope`: the site of a whole torchvision ResNet-50 (random weights) over a small folder holds every
conv unit with its top-k as the dataset pass ranks them, each image once; a rerun reuses the pass; it opens from
file:// in headless Chromium at 1280 and 390 px with no console error and no request beyond its own files, and a
layer4 unit opens by its address, a click and the keys; bad input is one line, exit 2, and loses nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from torch import nn

from netsight.cli import main
from netsight.ops.dataset_pass import UnitTopK
from tests.report.test_browser import keep_screenshot, layout_problems, watch

SIZE = 32  # ResNet-50's own resize and crop, cut to 32 px: layer4 is then a 1 x 1 map seeing the whole image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(2)
    for i in range(7):
        pixels = rng.integers(0, 256, (40 + i, 44, 3), dtype=np.uint8)
        pixels[10 + i : 20 + i, 5:25] = 255  # a bright patch, somewhere else in each image
        Image.fromarray(pixels).save(root / f"photo{i}.png")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory, folder):
    out = tmp_path_factory.mktemp("microscope") / "site"
    argv = ["microscope", "--model", "torchvision:resnet50", "--images", str(folder), "--input-size", str(SIZE)]
    assert main([*argv, "--top-k", "4", "--batch-size", "3", "--out", str(out), "--quiet"]) == 0
    return out, argv


def layer_data(path) -> dict:
    text = path.read_text()
    head = "netsightMicroscope.layer("
    assert text.startswith(head) and text.rstrip().endswith(");")
    index, data = text[len(head) : text.rstrip().rindex(")")].split(",", 1)
    return {"index": int(index), **json.loads(data)}


def index_data(out) -> dict:
    page = (out / "index.html").read_text()
    start = page.index("<script type='application/json' id='microscope-index'>") + len(
        "<script type='application/json' id='microscope-index'>"
    )
    return json.loads(page[start : page.index("</script>", start)])


@pytest.mark.slow
def test_the_site_holds_every_conv_unit_of_a_resnet50(site):
    from torchvision.models import resnet50

    out, _ = site
    convs = [(n, m.out_channels) for n, m in resnet50().named_modules() if isinstance(m, nn.Conv2d)]
    index = index_data(out)
    assert [(e["name"], e["units"]) for e in index["layers"]] == convs
    assert sum(units for _, units in convs) == 26_560 and len(convs) == 53
    state = UnitTopK.load(out / "pass.safetensors")
    assert state.covered == [(0, 7)]
    used = set()
    for i, entry in enumerate(index["layers"]):
        data = layer_data(out / entry["file"])
        top = state.layers[entry["name"]]
        assert data["index"] == i and data["k"] == 4
        assert data["images"] == top.images.flatten().tolist()  # the pass's ranking, as it made it
        assert np.allclose(data["values"], top.values.flatten().tolist(), rtol=1e-3, atol=1e-6)
        assert len(data["at"]) == 2 * len(data["images"]) == 2 * 4 * entry["units"]
        fh, fw = data["field"]
        for top_, left in zip(data["at"][::2], data["at"][1::2], strict=True):  # every field overlaps the image
            assert top_ < SIZE and left < SIZE and top_ + fh > 0 and left + fw > 0
        used |= set(data["images"])
    assert index["layers"][0]["field"] == [7, 7]  # conv1: 7 x 7, measured on the graph
    assert index["layers"][-1]["field"] is None  # layer4: the whole image from any unit
    assert sorted(int(p.stem) for p in (out / "images").glob("*.jpg")) == sorted(used)  # each image once, no other
    assert sorted(index["names"]) == sorted(str(i) for i in used)
    for p in (out / "images").glob("*.jpg"):
        with Image.open(p) as picture:
            assert picture.size == (SIZE, SIZE)


@pytest.mark.slow
def test_a_rerun_reuses_the_pass_and_other_flags_are_refused_with_nothing_lost(site, tmp_path, capsys):
    out, argv = site
    before = (out / "pass.safetensors").read_bytes()
    pages = {p.name: p.read_bytes() for p in (out / "layers").iterdir()}
    assert main([*argv, "--top-k", "4", "--batch-size", "5", "--out", str(out), "--quiet"]) == 0  # the same pass
    assert (out / "pass.safetensors").read_bytes() == before
    assert {p.name: p.read_bytes() for p in (out / "layers").iterdir()} == pages
    capsys.readouterr()
    assert main([*argv, "--top-k", "5", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pass.safetensors: this dataset pass was started with other settings (k: 4 vs 5)" in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    assert (out / "pass.safetensors").read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "layer9.conv1"], "--layers layer9.conv1: not a layer of this model"),
        (["--layers", "layer1.0.relu"], "--layers layer1.0.relu: not a convolution"),
        (["--top-k", "0"], "--top-k: 0: expected an integer from 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(folder, tmp_path, capsys, extra, message):
    out = tmp_path / "site"
    argv = ["microscope", "--model", "torchvision:resnet18", "--images", str(folder), "--input-size", "32", "--out", str(out)]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len([line for line in err.splitlines() if "error" in line]) == 1, err
    assert not out.exists() or not any(out.iterdir())


def test_without_images_or_out_or_a_cnn_it_says_so(tmp_path, capsys, tiny_runs):
    (tmp_path / "empty").mkdir()
    cases = [
        (["--model", "torchvision:resnet18", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], "no image"),
        (["--model", "torchvision:resnet18", "--images", str(tmp_path / "empty")], "give --out DIR"),
        ([str(tiny_runs.path("lstm"))], "is not a CNN"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main(["microscope", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len([line for line in err.splitlines() if "error" in line]) == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.browser
def test_the_site_opens_from_file_at_1280_and_390_px(site, browser, tmp_path):
    out, _ = site
    index = index_data(out)
    deep = next(e for e in index["layers"] if e["name"] == "layer4.2.conv3")
    for width in (1280, 390):
        phone = width < 600
        page = browser.new_page(viewport={"width": width, "height": 900}, is_mobile=phone, has_touch=phone)
        problems, requests = watch(page)
        page.goto((out / "index.html").as_uri() + "#layer4.2.conv3/2047")
        page.wait_for_function("() => document.querySelector('#detail').dataset.unit === '2047'", timeout=10_000)
        assert page.get_attribute("#detail", "data-layer") == "layer4.2.conv3"
        assert "unit 2047 of 2048" in page.inner_text("#detail h2")
        crops = page.query_selector_all("#detail .cards .crop")
        assert len(crops) == 4 and all("images/" in (c.get_attribute("style") or "") for c in crops)
        # counted in the page: query_selector_all would make a Playwright handle of each of the 2,048 (~4 s of CPU)
        assert page.locator("#grid button").count() == deep["units"]
        page.wait_for_timeout(300)  # the visible grid cells get their crops
        assert layout_problems(page, width) == [], width
        page.click("#grid button[data-unit='5']")
        page.wait_for_function("() => location.hash === '#layer4.2.conv3/5'")
        if not phone:
            page.keyboard.press("ArrowRight")
            page.wait_for_function("() => location.hash === '#layer4.2.conv3/6'")
            page.keyboard.press("ArrowUp")  # the layer before, same unit
            page.wait_for_function("() => location.hash === '#layer4.2.conv2/6'")
            page.go_back()
            page.wait_for_function(
                "() => document.querySelector('#detail').dataset.unit === '6' && "
                "document.querySelector('#detail').dataset.layer === 'layer4.2.conv3'"
            )
        page.goto((out / "index.html").as_uri() + "#nonsense/99")  # an invalid address: corrected in place
        page.wait_for_function("() => location.hash === '#conv1/0'")
        keep_screenshot(page, tmp_path, f"microscope-{width}.png", full_page=False)
        assert problems == [], problems
        assert all(r.startswith("file://") for r in requests), [r for r in requests if not r.startswith("file://")]
        assert any("/layers/" in r for r in requests) and any("/images/" in r for r in requests)


def test_a_runs_site_with_feature_visualisations(tiny_runs, tmp_path, capsys):
    """`netsight microscope RUN_DIR --featureviz`: per unit an optimised image (a tile of the layer's sprite) and its
    mean activation beside the strongest test image's on the same measure, and one at each weight snapshot; the run's
    own site is recorded."""
    run = tiny_runs.copy("lenet5", tmp_path / "run")
    assert main(["microscope", str(run), "--layers", "conv1", "--featureviz", "--steps", "8", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(run / "microscope" / "index.html")
    data = layer_data(run / "microscope" / "layers" / "000.js")
    fv = data["featureviz"]
    units = index_data(run / "microscope")["layers"][0]["units"]
    assert len(fv["reached"]) == len(fv["best"]) == len(fv["best_image"]) == units and fv["steps"] == 8
    with Image.open(run / "microscope" / fv["sprite"]) as sprite:
        assert sprite.size == (fv["columns"] * 28, -(-units // fv["columns"]) * 28)
    over = data["training"]  # the tiny run's snapshots (3, 6) and final weights: an optimised image at each
    assert len(over["featureviz"]) == len(over["iterations"]) == 3
    for s, fv_then in enumerate(over["featureviz"][:-1]):
        assert fv_then["sprite"] == f"featureviz/000-{s:02d}.png" and (run / "microscope" / fv_then["sprite"]).is_file()
        assert len(fv_then["reached"]) == units
    assert over["featureviz"][-1] == fv  # the last snapshot is the final weights: the image above, not made twice
    assert "microscope" in json.loads((run / "inspections.json").read_text())["ran"]  # the report links it


def test_a_runs_site_with_deconvnet_projections_equal_to_the_deconvnets_own(tiny_runs, tmp_path):
    """`--projections N`: each unit's first N crops projected by the deconvnet (Zeiler & Fergus 2014), a row of N tiles
    per unit in the layer's sprite; each tile is the deconvnet's projection of that unit at that image and place,
    cropped to the field and scaled on its own (grey zero), as `ops.deconvnet_graph.make_deconvnet` computes it alone."""
    import torch

    from netsight.ops.deconvnet_graph import make_deconvnet
    from netsight.ops.hooks import normalised_input
    from netsight.ops.topk import crop
    from netsight.plotting import projection_image
    from netsight.techniques.target import open_run_target

    run = tiny_runs.copy("lenet5", tmp_path / "run")
    assert main(["microscope", str(run), "--layers", "conv1,conv2", "--projections", "3", "--top-k", "4", "--quiet"]) == 0
    site = run / "microscope"
    t = open_run_target(run)
    checked = 0
    for i, name in enumerate(["conv1", "conv2"]):
        data = layer_data(site / "layers" / f"{i:03d}.js")
        pr = data["projections"]
        units = index_data(site)["layers"][i]["units"]
        assert pr["n"] == 3 and len(pr["sprites"]) == -(-units // pr["per_sprite"])
        th, tw = pr["tile"]
        assert [th, tw] == data["field"]  # LeNet5's fields are under the tile size: not shrunk
        with Image.open(site / pr["sprites"][0]) as sprite:
            assert sprite.size == (3 * tw, min(units, pr["per_sprite"]) * th)
            sheet = np.asarray(sprite.convert("L"), dtype=np.float64) / 255
        with normalised_input(t.model, t.mean, t.std):
            net = make_deconvnet(t.model, name, t.images.shape)
            f = net.field
            for u in (0, units - 1):
                for r in range(3):
                    j = u * data["k"] + r
                    x = t.images.load([data["images"][j]])
                    at = torch.tensor(
                        [[(data["at"][2 * j] - f.start[0]) // f.jump[0], (data["at"][2 * j + 1] - f.start[1]) // f.jump[1]]]
                    )
                    proj = net.project(x, torch.tensor([u]), "max", at).images
                    expect = projection_image(crop(proj, at, f)[0][0])
                    got = sheet[u * th : (u + 1) * th, r * tw : (r + 1) * tw]
                    assert np.abs(got - expect).max() <= 1 / 255 + 1e-9, (name, u, r)
                    checked += 1
    assert checked == 12
