"""Fixtures that make tiny data in the real formats, and find ../shared/data when present."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from netsight.data import Dataset
from netsight.data.formats import encode_idx
from netsight.data.sources import IDX_NAMES
from netsight.data.specs import CIFAR10_CLASSES


THREADS = torch.get_num_threads()  # torch's own default for this machine, read before any test runs
os.environ.setdefault("NETSIGHT_STRICT_REPORT", "1")  # a study report missing a figure it expects fails the test


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test (or a module fixture, set up before this one) that sets torch's thread count must not change the
    next tests': a float64 comparison such as the fleet's sums in another order with one thread than with two
    (1.6e-9 against 1.8e-11). Every test ends with the default again."""
    yield
    torch.set_num_threads(THREADS)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# An unexpected exception inside `netsight.cli.main` propagates (instead of becoming the user's
# one-line "internal error" and exit 70), so no test can pass over a bug.
os.environ["NETSIGHT_DEBUG"] = "1"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def make_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def make_labels(n: int, classes: int = 10) -> np.ndarray:
    return (np.arange(n) % classes).astype(np.uint8)


def write_idx_folder(folder: Path, n_train: int = 30, n_test: int = 20, compress: bool = True, size: int = 28) -> dict:
    """The four MNIST IDX files (gzipped by default) with random pixels and cyclic labels."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_x": make_images(n_train, (size, size), 1),
        "train_y": make_labels(n_train),
        "test_x": make_images(n_test, (size, size), 2),
        "test_y": make_labels(n_test),
    }
    for key, stem in IDX_NAMES.items():
        data = encode_idx(arrays[key])
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def cifar_batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR-10 python batch as the official files hold it (a pickled dict)."""
    return pickle.dumps(
        {
            b"batch_label": b"test",
            b"labels": labels,
            b"data": images.reshape(len(images), -1),
            b"filenames": [f"{i}.png".encode() for i in range(len(images))],
        },
        protocol=2,
    )


def write_cifar_batches(folder: Path, per_batch: int = 20, seed: int = 0) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for i in range(1, 6):
        x = make_images(per_batch, (3, 32, 32), seed + i)
        y = [int(v) for v in make_labels(per_batch)]
        (folder / f"data_batch_{i}").write_bytes(cifar_batch_bytes(x, y))
        train_x.append(x)
        train_y += y
    test_x, test_y = make_images(per_batch, (3, 32, 32), seed + 9), [int(v) for v in make_labels(per_batch)]
    (folder / "test_batch").write_bytes(cifar_batch_bytes(test_x, test_y))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}))
    return {"train_x": np.concatenate(train_x), "train_y": np.array(train_y), "test_x": test_x, "test_y": np.array(test_y)}


def write_image_tree(root: Path, per_class: dict, mode: str = "RGB", size: int = 32, names=CIFAR10_CLASSES, ext=".png") -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name in names:
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size, size, 3) if mode == "RGB" else (size, size)
                Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(d / f"{i:04d}{ext}")


def tar_folder(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return dest


def tiny_dataset(name: str = "mnist", n_train: int = 256, n_test: int = 100, shape=(1, 28, 28), seed: int = 0) -> Dataset:
    """Random-pixel data whose label is learnable (it is written into the image's brightness)."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.arange(n) % 10
        x = torch.randint(0, 60, (n, *shape), generator=g, dtype=torch.uint8)
        x[:, :, : shape[1] // 2] += (y * 19).to(torch.uint8).view(-1, 1, 1, 1)
        return x, y

    (tx, ty), (vx, vy) = split(n_train), split(n_test)
    return Dataset(name, tx, ty, vx, vy, tuple(str(i) for i in range(10)), "test-fixture")


@pytest.fixture
def tiny():
    return tiny_dataset()


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` (folders too) with its content's SHA-256 ("dir" for a folder): equal
    snapshots before and after a command mean it created, changed and deleted nothing there."""
    import hashlib

    root = Path(root)
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }
