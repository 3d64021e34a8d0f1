"""Folders of images (class subfolders optional) and tensors as sources for inspecting any model."""

import numpy as np
import pytest
import torch
from PIL import Image

from netsight.data.images import folder_images, list_image_folder, tensor_images
from netsight.errors import NetsightError


def _png(path, h, w, mode="RGB", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def test_class_subfolders_are_labels(tmp_path):
    _png(tmp_path / "cat" / "a.png", 10, 12)
    _png(tmp_path / "cat" / "deep" / "b.png", 10, 12)
    _png(tmp_path / "dog" / "c.jpg", 10, 12)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    paths, labels, classes = list_image_folder(tmp_path)
    assert classes == ("cat", "dog") and labels == [0, 0, 1]
    assert [p.name for p in paths] == ["a.png", "b.png", "c.jpg"]


def test_a_flat_folder_has_no_labels_and_is_read_as_files_hold_it(tmp_path, capsys):
    first = _png(tmp_path / "one.png", 6, 8)
    _png(tmp_path / "sub" / "two.png", 6, 8, "L")
    (tmp_path / "readme.md").write_text("x")
    source = folder_images(tmp_path, 3)
    assert source.labels is None and source.classes is None and len(source) == 2
    assert "skipped 1 file(s) that are not images" in capsys.readouterr().err
    x = source.load([0, 1])
    assert x.shape == (2, 3, 6, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    expected = torch.from_numpy(np.asarray(Image.open(first), dtype=np.float32) / 255).permute(2, 0, 1)
    torch.testing.assert_close(x[0], expected)
    assert torch.equal(x[1, 0], x[1, 1])  # a grey image becomes RGB by repeating its channel


def test_resize_and_crop_give_one_size_and_batches_cover_everything(tmp_path):
    for i, (h, w) in enumerate([(40, 60), (50, 30), (33, 33)]):
        _png(tmp_path / f"{i}.png", h, w, seed=i)
    source = folder_images(tmp_path, 1, resize=20, crop=16)
    assert source.shape == (1, 16, 16)
    seen = [(start, len(x)) for start, x in source.batches(2)]
    assert seen == [(0, 2), (2, 1)]


def test_mixed_sizes_without_a_crop_name_the_file(tmp_path):
    _png(tmp_path / "a.png", 10, 10)
    _png(tmp_path / "b.png", 12, 10)
    source = folder_images(tmp_path, 3)
    with pytest.raises(NetsightError, match=r"b\.png: image is 10x12, the first image .* is 10x10; give --input-size"):
        source.load([0, 1])


def test_folder_errors(tmp_path):
    with pytest.raises(NetsightError, match="no such folder"):
        folder_images(tmp_path / "absent", 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetsightError, match="no image files"):
        folder_images(tmp_path / "empty", 3)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(NetsightError, match=r"x\.png: not a readable image"):
        folder_images(tmp_path / "bad", 3)
    _png(tmp_path / "ok" / "a.png", 4, 4)
    with pytest.raises(NetsightError, match="takes 4 input channels"):
        folder_images(tmp_path / "ok", 4)


def test_tensor_sources():
    u8 = torch.randint(0, 256, (3, 1, 4, 4), dtype=torch.uint8)
    source = tensor_images(u8)
    torch.testing.assert_close(source.load([2]), u8[2:].float() / 255)
    with pytest.raises(NetsightError, match=r"expected a tensor \[N, C, H, W\]"):
        tensor_images(torch.zeros(4, 4))
    with pytest.raises(NetsightError, match="2 labels for 3 images"):
        tensor_images(u8, torch.tensor([0, 1]))
