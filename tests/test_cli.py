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


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "netsight", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("netsight ")


def test_the_command_line_starts_without_importing_torchvision():
    """Building the parser imports every technique (each declares its flags): none may import torchvision at
    module level, whose import (it loads torch._dynamo) cost every command ~1.5 s of its start (4.5 s to 2.8 s)."""
    code = "import sys\nfrom netsight.cli import build_parser\nbuild_parser()\nprint('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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
