"""`netsight inspect --model`: torchvision AlexNet, VGG-11 and ResNet-18 with random weights saved
by the tests, on an image folder the tests write, through every technique from the CLI; the
results are checked against independent computations, and every bad input is one clear line."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from netsight import zf
from netsight.ops.hooks import normalised_input
from netsight.cli import main
from tests.helpers import swap_relus

pytestmark = pytest.mark.slow

# (model, weights format, input size, --layer, the module whose output is ranked)
MODELS = [
    ("alexnet", ".pth", 64, "features.3", "features.4"),  # a conv: its in-place ReLU is projected
    ("vgg11", ".safetensors", 32, "features.6", "features.7"),
    ("resnet18", ".safetensors", 32, "layer2", "layer2"),  # skip connections: the general path
]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for c, name in enumerate(["goldfish", "tench"]):  # ImageNet classes 1 and 0
        (root / name).mkdir()
        for i in range(5):
            h, w = 70 + 9 * i, 90 - 5 * i  # sizes differ: the model's own resize + crop make them one
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            pixels[h // 3 : h // 2, w // 4 : w // 2] = 255 * c  # some structure
            Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import torchvision

    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for name, suffix, *_ in MODELS:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name)
        path = folder / f"{name}{suffix}"
        if suffix == ".pth":
            torch.save({"epoch": 1, "state_dict": model.state_dict()}, path)
        else:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        paths[name] = path
    return paths


def _model(name, path):
    from netsight.models.external import load_external_model

    return load_external_model(f"torchvision:{name}", path).module


def _images(folder, size):
    return zf.images(folder, None, size, round(size * 256 / 224))


@pytest.mark.parametrize("name, suffix, size, layer, ranked", MODELS)
def test_every_technique_from_the_cli(name, suffix, size, layer, ranked, image_folder, weights, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "inspect",
        "--model",
        f"torchvision:{name}",
        "--weights",
        str(weights[name]),
        "--images",
        str(image_folder),
        "--input-size",
        str(size),
        "--layer",
        layer,
        "--filters",
        "--activations",
        "--deconv",
        "--top9",
        "--occlusion",
        "--invariance",
        "--count",
        "2",
        "--maps",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 14 and all(Path(p).is_file() for p in printed)
    filters = f"filters_{layer}.png" if name != "resnet18" else "filters_conv1.png"  # --layer, when it is a conv
    for figure in (
        filters,
        "weights_hist.png",
        "activations.png",
        f"deconv_{layer}_max.png",
        f"top9_{layer}.png",
        f"occlusion_{layer}.png",
        "invariance.png",
    ):
        assert (out / "figures" / figure).stat().st_size > 1000, figure
    record = json.loads((out / "inspection.json").read_text())
    assert record["count"] == 10 and record["image_shape"] == [3, size, size]
    assert record["labels"] == "the images' classes" and record["preprocessing"]["mean"] == list(MEAN)

    model, source = _model(name, weights[name]), _images(image_folder, size)
    batch = source.load(range(len(source)))
    # top-9: the chosen units really are the strongest: brute force over every image and position
    with normalised_input(model, MEAN, STD), torch.no_grad():
        seen = {}
        handle = dict(model.named_modules())[ranked].register_forward_hook(lambda m, i, o: seen.update(a=o.clone()))
        model(batch)
        handle.remove()
    act = seen["a"]
    per_image = act.flatten(2).amax(2)  # [images, maps]
    assert json.loads((out / "tables" / f"top9_{layer}_field.json").read_text())["ranked"] == ranked  # files: the layer asked
    with open(out / "tables" / f"top9_{layer}.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == act.shape[1] * 9
    for m in (0, 1, act.shape[1] - 1):
        mine = [r for r in rows if int(r["map"]) == m]
        expected = per_image[:, m].sort(descending=True).values[:9]
        np.testing.assert_allclose([float(r["activation"]) for r in mine], expected.numpy(), rtol=1e-4, atol=1e-5)
        for r in mine[:3]:
            i, y, x = int(r["image"]), int(r["y"]), int(r["x"])
            assert act[i, m, y, x] == pytest.approx(float(r["activation"]), rel=1e-4, abs=1e-5)
            assert r["file"] == source.names[i] and r["label"] == r["file"].split("/")[0]
    # activation statistics of a conv followed by an in-place ReLU still see the negative values
    with open(out / "tables" / "activations.csv") as f:
        stats = {(r["layer"], r["stage"]): r for r in csv.DictReader(f)}
    first = "features.0" if name != "resnet18" else "conv1"
    assert float(stats[(first, "conv")]["min"]) < 0 and float(stats[(first, "relu")]["min"]) == 0
    convs = [n for n, mod in model.named_modules() if isinstance(mod, nn.Conv2d)]
    assert {k[0] for k in stats} == set(convs)
    # invariance: the shift range scales with the image (8/28 of its side), identity gives distance 0
    with open(out / "tables" / "invariance.csv") as f:
        inv = [r for r in csv.DictReader(f) if r["transform"].startswith("vertical")]
    reach = round(8 * size / 28)
    assert [float(r["amount"]) for r in inv][0] == -reach and float(inv[4]["amount"]) == 0
    assert float(inv[4]["first_mean"]) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("name, suffix, size, layer, ranked", MODELS)
def test_projections_equal_the_autograd_oracle(name, suffix, size, layer, ranked, image_folder, weights):
    model = _model(name, weights[name])
    source = _images(image_folder, size)
    x = source.load([0, 7])
    result = zf.deconv(model, x, layer, maps=2, mode="map", mean=MEAN, std=STD)
    assert result.layer == ranked
    oracle = swap_relus(model).eval()  # every nn.ReLU rectifies on the way back: the autograd oracle
    xs = x.clone().requires_grad_(True)
    seen = {}
    with normalised_input(oracle, MEAN, STD):
        handle = dict(oracle.named_modules())[ranked].register_forward_hook(lambda m, i, o: seen.update(a=o))
        oracle(xs)
        handle.remove()
    act = seen["a"]
    for j in range(2):
        signal = torch.zeros_like(act)
        for i in range(2):
            signal[i, result.rows[i][j][0]] = act[i, result.rows[i][j][0]].detach()
        (expected,) = torch.autograd.grad(act, xs, signal, retain_graph=True)
        got = torch.stack([result.rows[i][j][2] for i in range(2)])  # mode "map": the whole image
        assert expected.abs().sum() > 0
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def _one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("netsight: warning")]
    assert len(err) == 1 and err[0].startswith("netsight: error: "), err
    return err[0]


def test_bad_input_is_one_clear_line(image_folder, weights, tmp_path, capsys):
    base = ["inspect", "--deconv", "--out", str(tmp_path / "o")]
    resnet = ["--model", "torchvision:resnet18", "--weights", str(weights["resnet18"])]
    cases = [
        (resnet + ["--data", "mnist"], "images have 1 channel(s), the model torchvision:resnet18 takes 3"),
        (
            resnet + ["--images", str(image_folder), "--input-size", "32", "--layer", "layer2.0.conv"],
            "did you mean layer2.0.conv2, layer2.0.conv1",
        ),
        (["--model", "torchvision:resnet-18", "--images", str(image_folder)], "did you mean resnet18"),
        (
            ["--model", "torchvision:alexnet", "--weights", str(weights["resnet18"]), "--images", str(image_folder)],
            "key features.0.weight (shape (64, 3, 11, 11)) is missing",
        ),
        (resnet + ["--images", str(image_folder), "--evolution"], "--evolution needs the weight snapshots"),
        (resnet, "give the images to look at with --images DIR or --data NAME"),
        (resnet + ["--images", str(tmp_path / "absent")], "no such folder"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        assert message in _one_line(capsys), extra
    assert main(["inspect", "--deconv"] + resnet + ["--images", str(image_folder)]) == 2
    assert "give --out DIR" in _one_line(capsys)
    run = tmp_path / "some-run"  # refused before the run directory is read
    assert main(["inspect", str(run), "--deconv", "--images", "6"]) == 2
    assert "the number of images is --count 6 now" in _one_line(capsys)
    assert main(["inspect", str(run), "--deconv", "--model", "torchvision:resnet18"]) == 2
    assert "not both" in _one_line(capsys)


def test_a_netsight_dataset_and_an_own_model_file(tmp_path, capsys):
    """--data NAME with a model defined in the user's file: mnist's classes are the model's outputs."""
    source = tmp_path / "digits.py"
    source.write_text(
        "from torch import nn\n"
        "def small():\n"
        "    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3),\n"
        "                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))\n"
    )
    torch.manual_seed(0)
    import importlib.util

    spec = importlib.util.spec_from_file_location("digits_for_weights", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save_file(module.small().state_dict(), str(tmp_path / "small.safetensors"))
    out = tmp_path / "o"
    assert (
        main(
            [
                "inspect",
                "--model",
                f"{source}:small",
                "--weights",
                str(tmp_path / "small.safetensors"),
                "--data",
                "mnist",
                "--top9",
                "--occlusion",
                "--count",
                "1",
                "--layer",
                "3",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    record = json.loads((out / "inspection.json").read_text())
    assert record["labels"] == "the images' classes" and record["count"] == 10_000
    with open(out / "tables" / "top9_3.csv") as f:
        rows = list(csv.DictReader(f))
    from netsight.data import DATASETS

    assert len(rows) == 8 * 9 and {r["label"] for r in rows} <= set(DATASETS["mnist"].classes)
    assert (out / "figures" / "occlusion_3.png").is_file()  # layer 3 is a conv: its ReLU, module 4, is used


def test_explore_a_torchvision_model(image_folder, weights, tmp_path, capsys):
    """netsight explore --model: the unit browser for any CNN; its top-9 are those of netsight.zf."""
    import re

    page = tmp_path / "resnet.html"
    assert (
        main(
            [
                "explore",
                "--model",
                "torchvision:resnet18",
                "--weights",
                str(weights["resnet18"]),
                "--images",
                str(image_folder),
                "--input-size",
                "32",
                "--layers",
                "layer1.0.conv1",
                "--out",
                str(page),
                "--quiet",
            ]
        )
        == 0
    )
    text = page.read_text()
    data = json.loads(re.search(r"<script type='application/json' id='explore-data'>(.*?)</script>", text, re.S).group(1))
    layer = data["layers"][0]
    assert layer["name"] == "layer1.0.conv1" and len(layer["units"]) == 64
    model, source = _model("resnet18", weights["resnet18"]), _images(image_folder, 32)
    top = zf.top_activations(model, source, "layer1.0.conv1", mean=MEAN, std=STD)
    for m in (0, 33):
        cards = next(p for p in layer["units"][m]["panels"] if p["kind"] == "images")["items"]  # the unit's top-9
        assert [int(c["data"]["image"]) for c in cards] == top.image_index[m].tolist()
        assert [c["title"].split(",")[0] for c in cards] == [source.names[i] for i in top.image_index[m].tolist()]
    assert main(["explore", "--model", "torchvision:resnet18", "--images", str(image_folder), "--out", str(page)]) == 2
    assert "give --layers" in _one_line(capsys)
    assert (
        main(
            [
                "explore",
                "--model",
                "torchvision:resnet18",
                "--images",
                str(image_folder),
                "--layers",
                "layer1",
                "--out",
                str(page),
            ]
        )
        == 2
    )
    assert "not a convolution" in _one_line(capsys)


def test_one_out_folder_holds_one_network(tmp_path, capsys, tiny_runs):
    """Without --weights the initialisation comes from --seed (0), so the same command gives the same
    network; an --out holding another network's inspection, or a run directory, is refused untouched."""
    source = tmp_path / "net.py"
    source.write_text(
        "from torch import nn\n"
        "def net():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 28 * 28, 10))\n"
    )
    base = ["inspect", "--model", f"{source}:net", "--data", "mnist", "--filters", "--quiet"]
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(base + ["--out", str(first)]) == 0 and main(base + ["--out", str(second)]) == 0
    assert json.loads((first / "inspection.json").read_text())["seed"] == 0
    assert (first / "figures" / "filters_0.png").read_bytes() == (second / "figures" / "filters_0.png").read_bytes()
    assert main(base + ["--out", str(first)]) == 0  # the same network again: brought up to date
    capsys.readouterr()
    snapshot = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    assert main(base + ["--seed", "1", "--out", str(first)]) == 2
    assert "differs in seed" in _one_line(capsys)
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == snapshot
    run = tiny_runs.copy("lenet5", tmp_path / "run")  # any run directory: the session's, not a training of its own
    assert main(base + ["--out", str(run)]) == 2
    assert "is a netsight run directory" in _one_line(capsys)
    assert main(["inspect", str(run), "--filters", "--seed", "3"]) == 2
    assert "--seed goes with --model SPEC" in _one_line(capsys)


def test_an_unreadable_image_is_recorded_and_a_tuple_output_refused(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    source = tmp_path / "net.py"
    source.write_text(
        "from torch import nn\n"
        "class Pair(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 4, 3)\n"
        "        self.fc = nn.Linear(4 * 26 * 26, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.conv(x).relu().flatten(1)), x\n"
        "def net():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))\n"
    )
    out = tmp_path / "o"
    assert main(["inspect", "--model", f"{source}:net", "--images", str(folder), "--filters", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "inspection.json").read_text())
    assert record["count"] == 3 and list(record["skipped"]) == ["broken.png"]
    capsys.readouterr()
    assert (
        main(
            [
                "inspect",
                "--model",
                f"{source}:Pair",
                "--images",
                str(folder),
                "--filters",
                "--out",
                str(tmp_path / "p"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "the model's output is a tuple, not a tensor" in _one_line(capsys) and not (tmp_path / "p").exists()
