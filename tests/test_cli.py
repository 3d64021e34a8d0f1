"""CLI smoke runs: a few dozen iterations on the bundled data and on ../shared/data."""

import subprocess
import sys

import pytest

from netsight.cli import main
from netsight.fileio import read_json


def test_train_on_bundled_data(tmp_path, capsys):
    assert main(["train", "lenet5", "--iterations", "20", "--eval-every", "10", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert "final test accuracy" in capsys.readouterr().out
    summary = read_json(tmp_path / "r" / "summary.json")
    assert summary["data_source"] == "bundled" and summary["iterations_done"] == 20


def test_train_rnn_on_shared_data(tmp_path, shared_data):
    assert (
        main(
            [
                "train",
                "lstm",
                "--hidden",
                "32",
                "--iterations",
                "20",
                "--eval-every",
                "10",
                "--data-root",
                str(shared_data),
                "--out",
                str(tmp_path / "r"),
                "--quiet",
            ]
        )
        == 0
    )
    assert read_json(tmp_path / "r" / "summary.json")["data_source"] == f"path:{shared_data.resolve() / 'mnist'}"


def test_train_cnn_on_shared_course_layout(tmp_path, shared_data):
    assert (
        main(
            [
                "train",
                "cnn-bn",
                "--iterations",
                "20",
                "--eval-every",
                "10",
                "--data-root",
                str(shared_data),
                "--out",
                str(tmp_path / "r"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "cifar10/assignment" in read_json(tmp_path / "r" / "summary.json")["data_source"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "lenet5", "--lr", "-3"], "argument --lr: -3: expected a number in (0, 1e+06]"),
        (["train", "vgg"], "model 'vgg': unknown"),
        (["train", "lenet5", "--data-root", "/does/not/exist"], "--data-root /does/not/exist: no such file or folder"),
        (["data", "check", "imagenet"], "--data 'imagenet': unknown dataset"),
        (["trian", "lenet5"], "did you mean train?"),  # a mistyped command
        (["train", "lenet5", "--iteratoins", "5"], "unrecognized arguments: --iteratoins 5; did you mean --iterations?"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_listing_commands(capsys):
    assert main(["models"]) == 0
    assert "lenet5" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    assert "cifar10-assignment" in capsys.readouterr().out
    assert main(["data", "check", "cifar10-assignment"]) == 0
    assert "per class [1000, 1000" in capsys.readouterr().out


@pytest.fixture(scope="module")
def dash_m_version():
    """`python -m netsight --version` with -X importtime (every module the process imports, on stderr), run once
    for the two tests below: each process imports torch (~3 s of CPU)."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "netsight", "--version"], capture_output=True, text=True, check=True
    )


def test_python_dash_m_entry_point(dash_m_version):
    assert dash_m_version.stdout.startswith("netsight ")


def test_the_command_line_starts_without_importing_torchvision(dash_m_version):
    """Building the parser imports every technique (each declares its flags): none may import torchvision at
    module level, whose import (it loads torch._dynamo) cost every command ~1.5 s of its start (4.5 s to 2.8 s).
    `netsight --version` builds the whole parser before it reads its flags; -X importtime lists every module the
    process imported ("import time: self | cumulative | name"), as sys.modules at its end would hold them."""
    imported = {line.rsplit("|", 1)[1].strip() for line in dash_m_version.stderr.splitlines() if line.startswith("import time:")}
    assert {"netsight.cli", "netsight.techniques"} <= imported  # the listing covers the start, the parser's build included
    assert not {name for name in imported if name.split(".")[0] == "torchvision"}


def test_no_suggestion_when_nothing_is_close(capsys):
    assert main(["train", "lenet5", "--zzzzzz"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def test_images_given_a_file_says_a_folder_is_expected(tmp_path):
    from netsight.data.images import list_image_folder
    from netsight.errors import NetsightError

    image = tmp_path / "img.png"
    image.write_bytes(b"not really a png")
    with pytest.raises(NetsightError, match=r"--images .*img.png: a file; expected a folder of images"):
        list_image_folder(image)
