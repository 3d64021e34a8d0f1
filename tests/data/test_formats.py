import gzip
import lzma
import pickle

import numpy as np
import pytest

from netsight.data.formats import decode_image, encode_idx, parse_idx, read_cifar_batch, read_idx
from netsight.errors import NetsightError
from tests.conftest import cifar_batch_bytes, make_images


def test_idx_roundtrip_raw_gzip_xz(tmp_path):
    a = make_images(5, (28, 28))
    data = encode_idx(a)
    for name, blob in (("raw", data), ("f.gz", gzip.compress(data)), ("f.xz", lzma.compress(data))):
        (tmp_path / name).write_bytes(blob)
        np.testing.assert_array_equal(read_idx(tmp_path / name), a)


def test_idx_header_layout_matches_the_mnist_spec():
    data = encode_idx(np.zeros((2, 3), dtype=np.uint8))
    assert data[:4] == bytes([0, 0, 8, 2])
    assert data[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert len(data) == 12 + 6


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"\x00\x00\x08", "not an IDX file"),
        (b"\x12\x34\x08\x01" + b"\x00" * 8, "not an IDX file"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01" + b"\x00" * 4, "element type 0x0d"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    ],
)
def test_idx_bad_headers_are_named(blob, message):
    with pytest.raises(NetsightError, match=message):
        parse_idx(blob, "bad.idx")


def test_idx_truncated_body_and_trailing_bytes(tmp_path):
    data = encode_idx(make_images(4, (28, 28)))
    (tmp_path / "t.gz").write_bytes(gzip.compress(data[:-10]))
    with pytest.raises(NetsightError, match=r"t.gz: truncated: header says 4x28x28 = 3136 bytes, file holds 3126"):
        read_idx(tmp_path / "t.gz")
    with pytest.raises(NetsightError, match="trailing bytes"):
        parse_idx(data + b"\x00", "x")


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    (tmp_path / "c.gz").write_bytes(gzip.compress(b"x" * 100)[:15])
    with pytest.raises(NetsightError, match="c.gz: corrupt or truncated compressed file"):
        read_idx(tmp_path / "c.gz")


def test_cifar_batch_reads_official_layout(tmp_path):
    x = make_images(7, (3, 32, 32))
    (tmp_path / "b").write_bytes(cifar_batch_bytes(x, [1, 2, 3, 4, 5, 6, 7]))
    images, labels = read_cifar_batch(tmp_path / "b")
    np.testing.assert_array_equal(images, x)
    assert labels.tolist() == [1, 2, 3, 4, 5, 6, 7]


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_cifar_batch_refuses_code_execution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil").write_bytes(pickle.dumps({"data": _Evil(), "labels": []}))
    with pytest.raises(NetsightError, match="refused to load global (posix|os|nt).system"):
        read_cifar_batch(tmp_path / "evil")
    assert not (tmp_path / "pwned").exists()


def test_cifar_batch_wrong_shape_and_labels(tmp_path):
    (tmp_path / "a").write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(NetsightError, match=r"'data' must be a uint8 array of shape \(N, 3072\)"):
        read_cifar_batch(tmp_path / "a")
    (tmp_path / "b").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}))
    with pytest.raises(NetsightError, match="'labels' must be a list of 2 integers"):
        read_cifar_batch(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"not a pickle at all")
    with pytest.raises(NetsightError, match="c: not a CIFAR-10 python batch"):
        read_cifar_batch(tmp_path / "c")


def test_decode_image_checks_size_and_converts(tmp_path):
    from PIL import Image

    Image.fromarray(make_images(1, (30, 30, 3))[0]).save(tmp_path / "x.png")
    with pytest.raises(NetsightError, match=r"x.png: image is 30x30, expected 28x28"):
        decode_image(tmp_path / "x.png", str(tmp_path / "x.png"), 1, 28)
    assert decode_image(tmp_path / "x.png", "x", 1, 30).shape == (1, 30, 30)
    assert decode_image(tmp_path / "x.png", "x", 3, None).shape == (3, 30, 30)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(NetsightError, match="bad.png: not a readable image"):
        decode_image(tmp_path / "bad.png", str(tmp_path / "bad.png"), 1, 28)
