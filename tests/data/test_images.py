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
    assert "skipped 1 file that is not an image" in capsys.readouterr().err
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
    with pytest.raises(NetsightError, match=r"b\.png: image is 10x12, the first image .* is 10x10; give --input-size"):
        folder_images(tmp_path, 3)  # named when the folder is opened, before any batch


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


def _damaged(path, how):
    blob = path.read_bytes()
    path.write_bytes(
        {
            "empty": b"",
            "truncated": blob[: len(blob) // 2],
            "garbage": bytes(range(256)) * 4,
            "header": blob[:8] + bytes(len(blob) - 8),
        }[how]
    )


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "header"])
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_an_unreadable_image_is_skipped_with_a_warning_and_indices_stay_consistent(tmp_path, capsys, how, ext):
    for i in range(6):
        _png(tmp_path / ("cat" if i % 2 else "dog") / f"{i}{ext}", 12, 12, seed=i)
    _damaged(tmp_path / "dog" / f"2{ext}", how)
    source = folder_images(tmp_path, 3)
    err = capsys.readouterr().err
    assert f"warning: --images {tmp_path}: skipped {'dog/2' + ext}: not a readable image" in err
    assert list(source.skipped) == [f"dog/2{ext}"] and "not a readable image" in source.skipped[f"dog/2{ext}"]
    assert len(source) == 5 and f"dog/2{ext}" not in source.names
    assert source.classes == ("cat", "dog") and source.labels.tolist() == [0, 0, 0, 1, 1]
    whole = torch.cat([x for _, x in source.batches(2)])
    for i, name in enumerate(source.names):  # index i is names[i] everywhere
        torch.testing.assert_close(source.load([i])[0], whole[i])
        assert source.labels[i] == (0 if name.startswith("cat") else 1)


def test_a_folder_with_no_readable_image_is_refused_and_many_skips_are_counted(tmp_path, capsys):
    for i in range(13):
        (tmp_path / f"{i:02d}.png").write_bytes(b"")
    with pytest.raises(NetsightError, match=r"none of its 13 image files can be read, e.g. 00.png: not a readable image"):
        folder_images(tmp_path, 3)
    _png(tmp_path / "good.png", 5, 5)
    source = folder_images(tmp_path, 3, progress=True)
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(source) == 1 and len(source.skipped) == 13
    assert len([line for line in err if ": skipped " in line and "not a readable image" in line]) >= 10
    assert any("skipped 3 more unreadable image files (13 of 14 in all)" in line for line in err)


def test_a_file_that_breaks_after_the_check_is_named(tmp_path):
    _png(tmp_path / "a.png", 5, 5)
    _png(tmp_path / "b.png", 5, 5)
    source = folder_images(tmp_path, 3)
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(NetsightError, match=r"b\.png: not a readable image .* it was readable when netsight listed"):
        source.load([1])
