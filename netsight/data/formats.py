"""Readers for the file formats datasets come in, each validating what it reads.

- IDX (MNIST, Fashion-MNIST), raw, gzip or xz compressed;
- CIFAR-10's python batches, read with a restricted unpickler that only builds plain numpy
  arrays, lists, dicts, strings and numbers: a pickle that asks for anything else (the way
  malicious pickles run code) is refused before any of it runs;
- image files (PNG/JPEG) through Pillow, checked for size.

Every problem is a `NetsightError` naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import io
import lzma
import pickle
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import NetsightError
from ..fileio import read_bytes

_GZIP_MAGIC = b"\x1f\x8b"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_IDX_UINT8 = 0x08


def read_compressed(path: Path) -> bytes:
    """The bytes of `path`, un-gzipped or un-xz'd when its first bytes say it is compressed."""
    data = read_bytes(path)
    try:
        if data.startswith(_GZIP_MAGIC):
            return gzip.decompress(data)
        if data.startswith(_XZ_MAGIC):
            return lzma.decompress(data)
    except COMPRESSION_ERRORS as exc:
        raise NetsightError(
            f"{path}: corrupt or truncated compressed file ({type(exc).__name__}: {exc}); replace it with a fresh copy"
        ) from None
    return data


# What a damaged gzip/xz stream raises: a bad header or CRC (OSError: BadGzipFile), a bad deflate
# stream (zlib.error), a cut-off stream (EOFError), a bad xz block (LZMAError).
COMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an IDX file of unsigned bytes (the only element type MNIST-style sets use)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise NetsightError(f"{name}: not an IDX file (expected magic bytes 00 00 08 <ndim>, got {data[:4].hex(' ')})")
    if data[2] != _IDX_UINT8:
        raise NetsightError(f"{name}: IDX element type 0x{data[2]:02x} is not supported (expected 0x08, unsigned byte)")
    ndim = data[3]
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise NetsightError(f"{name}: truncated IDX header (ndim={ndim}, {len(data)} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(data) - 4 - 4 * ndim
    if body != expected:
        what = "truncated" if body < expected else "has trailing bytes"
        raise NetsightError(f"{name}: {what}: header says {'x'.join(map(str, dims))} = {expected} bytes, file holds {body}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_compressed(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (used for the bundled copy and by the tests)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _IDX_UINT8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds numpy arrays and builtin containers; refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"refused to load global {module}.{name} (only numpy arrays are expected)")


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]  # the same function, numpy 1.x's path
    return _reconstruct


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 pickles (protocol <= 2) of bytes go through _codecs.encode(str, "latin1"): a pure function
    ("_codecs", "encode"): __import__("codecs").encode,
}


def read_cifar_batch(source: BinaryIO | Path, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> (images uint8 [N,3,32,32], labels int64 [N])."""
    name = name or str(source)
    raw = read_bytes(source) if isinstance(source, Path) else source.read()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # noqa: BLE001 - damaged pickles raise almost any type; the unpickler
        # cannot run code (only the allowed globals), so every failure here means "not a valid batch"
        raise NetsightError(f"{name}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise NetsightError(f"{name}: expected a dict with 'data' and 'labels', got {type(obj).__name__}")
    obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = obj.get("data"), obj.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise NetsightError(f"{name}: 'data' must be a uint8 array of shape (N, 3072), got {type(data).__name__} {shape}")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(v, int) for v in labels):
        raise NetsightError(f"{name}: 'labels' must be a list of {len(data)} integers")
    return data.reshape(-1, 3, 32, 32).copy(), np.asarray(labels, dtype=np.int64)


def decode_image(data: bytes | Path, name: str, channels: int, size: int | None) -> np.ndarray:
    """An image file -> uint8 [C,H,W] in the wanted number of channels; size checked when given."""
    from PIL import Image

    if isinstance(data, Path):
        data = read_bytes(data)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            array = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - Pillow reports damaged files as OSError, SyntaxError,
        # ValueError, struct.error, DecompressionBombError...: all of them mean "not a readable image"
        from PIL import UnidentifiedImageError

        reason = (
            "no image format Pillow knows, or a damaged header"
            if isinstance(exc, UnidentifiedImageError)
            else f"{type(exc).__name__}: {exc}"
        )  # the former's text names only an in-memory buffer
        raise NetsightError(f"{name}: not a readable image ({reason})") from None
    if size is not None and array.shape[:2] != (size, size):
        raise NetsightError(f"{name}: image is {array.shape[1]}x{array.shape[0]}, expected {size}x{size}")
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def check_labels(labels: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise NetsightError(f"{name}: label {int(bad)} out of range (expected 0..{num_classes - 1})")
    return labels.astype(np.int64)
