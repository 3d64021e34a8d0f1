"""Damaged and degenerate inputs: every one is a clear NetsightError naming the file."""

from __future__ import annotations

import gzip
import lzma
import shutil

import numpy as np
import pytest

from netsight.data import load_dataset
from netsight.data.formats import encode_idx, read_compressed
from netsight.data.sources import IDX_NAMES
from netsight.errors import NetsightError

from ..conftest import make_images, make_labels, tar_folder, write_idx_folder, write_image_tree


def _payload() -> bytes:
    return encode_idx(make_images(40, (28, 28)))


@pytest.mark.parametrize("damage", ["flip_deflate", "truncate", "cut_header", "bad_crc", "bad_size"])
def test_every_kind_of_damaged_gzip_is_one_clear_error(tmp_path, damage):
    blob = bytearray(gzip.compress(_payload()))
    if damage == "flip_deflate":  # a broken deflate stream (zlib.error), not only a bad CRC
        for i in range(20, 60):
            blob[i] ^= 0xFF
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "cut_header":
        blob = blob[:6]
    elif damage == "bad_crc":
        blob[-8] ^= 0xFF
    else:
        blob[-1] ^= 0xFF
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(NetsightError, match=r"x.gz: corrupt or truncated compressed file .*fresh copy"):
        read_compressed(path)


@pytest.mark.parametrize("damage", ["flip_block", "truncate", "bad_footer"])
def test_every_kind_of_damaged_xz_is_one_clear_error(tmp_path, damage):
    blob = bytearray(lzma.compress(_payload()))
    if damage == "flip_block":
        for i in range(30, 50):
            blob[i] ^= 0x55
    elif damage == "truncate":
        blob = blob[: len(blob) - 30]
    else:
        blob[-3] ^= 0xFF
    path = tmp_path / "x.xz"
    path.write_bytes(bytes(blob))
    with pytest.raises(NetsightError, match=r"x.xz: corrupt or truncated compressed file"):
        read_compressed(path)


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.97])
def test_a_damaged_tar_gz_is_one_clear_error(tmp_path, cut):
    write_image_tree(tmp_path / "top", {"train": 2, "test": 1})
    tarball = tar_folder(tmp_path / "top", tmp_path / "c10.tar.gz")
    blob = tarball.read_bytes()
    tarball.write_bytes(blob[: int(len(blob) * cut)])
    with pytest.raises(NetsightError, match=r"c10.tar.gz: .*(corrupt|truncated|not a readable|unreadable|expected members)"):
        load_dataset("cifar10", tarball)


def test_a_tar_gz_with_a_broken_deflate_stream(tmp_path):
    write_image_tree(tmp_path / "top", {"train": 2, "test": 1})
    tarball = tar_folder(tmp_path / "top", tmp_path / "c10.tar.gz")
    blob = bytearray(tarball.read_bytes())
    for i in range(len(blob) // 2, len(blob) // 2 + 64):
        blob[i] ^= 0xA5
    tarball.write_bytes(bytes(blob))
    with pytest.raises(NetsightError, match=r"c10.tar.gz"):
        load_dataset("cifar10", tarball)


def test_an_empty_split_is_refused_naming_the_file(tmp_path):
    write_idx_folder(tmp_path, n_train=30, n_test=20, compress=False)
    (tmp_path / IDX_NAMES["test_x"]).write_bytes(encode_idx(np.zeros((0, 28, 28), np.uint8)))
    (tmp_path / IDX_NAMES["test_y"]).write_bytes(encode_idx(np.zeros((0,), np.uint8)))
    with pytest.raises(NetsightError, match=r"t10k-images-idx3-ubyte: holds no images; the test split must not be empty"):
        load_dataset("mnist", tmp_path)


def test_a_class_missing_from_a_split_is_refused_naming_the_file(tmp_path):
    write_idx_folder(tmp_path, n_train=30, n_test=20, compress=False)
    labels = make_labels(20)
    labels[labels == 7] = 3
    (tmp_path / IDX_NAMES["test_y"]).write_bytes(encode_idx(labels))
    with pytest.raises(NetsightError, match=r"t10k-labels-idx1-ubyte: no images of class\(es\) 7"):
        load_dataset("mnist", tmp_path)


def test_an_empty_image_tree_split_is_refused(tmp_path):
    write_image_tree(tmp_path, {"train": 1, "test": 1})
    for d in (tmp_path / "test").iterdir():
        shutil.rmtree(d)
    with pytest.raises(NetsightError, match=r"test: holds no images"):
        load_dataset("cifar10", tmp_path)


def test_unexpected_class_folders_are_named(tmp_path):
    write_image_tree(tmp_path, {"train": 1, "test": 1})
    shutil.copytree(tmp_path / "train" / "cat", tmp_path / "train" / "unicorn")
    shutil.copytree(tmp_path / "train" / "cat", tmp_path / "train" / "10")
    with pytest.raises(NetsightError, match=r"train: unexpected class folder\(s\) '10', 'unicorn': not classes of cifar10"):
        load_dataset("cifar10", tmp_path)


def test_an_eleventh_folder_in_the_course_layout_is_named(tmp_path):
    write_image_tree(tmp_path, {"Train": 1, "Test": 1}, mode="L", size=28, names=[str(i) for i in range(11)])
    with pytest.raises(NetsightError, match=r"Train: unexpected class folder\(s\) '10'"):
        load_dataset("cifar10-assignment", tmp_path)


def test_non_image_files_in_class_folders_are_skipped_with_a_warning_naming_them(tmp_path, capsys):
    write_image_tree(tmp_path, {"train": 1, "test": 1})
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "cat" / "Thumbs.db").write_bytes(b"\0\1")
    ds = load_dataset("cifar10", tmp_path)
    assert len(ds.train_images) == 10
    err = capsys.readouterr().err
    assert "netsight: warning:" in err and "skipped 2 entries" in err and "Thumbs.db" in err and "notes.txt" in err


def test_a_damaged_image_with_an_image_name_is_refused(tmp_path):
    write_image_tree(tmp_path, {"train": 1, "test": 1})
    path = tmp_path / "train" / "cat" / "0000.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(NetsightError, match=r"train/cat/0000.png: not a readable image"):
        load_dataset("cifar10", tmp_path)
