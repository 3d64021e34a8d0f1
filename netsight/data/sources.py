"""Where a dataset's pixels come from, in order of precedence:

1. `--data-root DIR`: torchvision layouts (`MNIST/raw`, `FashionMNIST/raw`,
   `cifar-10-batches-py`), a folder holding the four IDX files (gzipped or not), the course
   layout (`Train/<class>/ImageNNNNN.png`, `Test/...`), or class-folder image trees
   (`train/<classname>/*.jpg`) and their `.tar.gz`. `cifar10-assignment` is derived from any
   full CIFAR-10 source when the course layout is absent.
2. `--download`: torchvision's official download into a cache folder.
3. The copy bundled inside the package (MNIST and cifar10-assignment).

Each loader returns numpy arrays `(train_x, train_y, test_x, test_y)` (images uint8
[N,C,H,W], labels int64) and a string saying where they came from.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import NetsightError, warn
from .formats import COMPRESSION_ERRORS, check_labels, decode_image, read_cifar_batch, read_idx
from .specs import ASSIGNMENT_PER_CLASS, DATASETS, DatasetSpec

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

IDX_NAMES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_IDX_SUFFIXES = ("", ".gz", ".xz")
_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
BUNDLED_DIR = Path(__file__).parent / "bundled"


def default_cache_dir() -> Path:
    return Path(os.environ.get("NETSIGHT_CACHE", Path.home() / ".cache" / "netsight"))


# --------------------------------------------------------------------------- IDX folders


def _idx_file(folder: Path, stem: str) -> Optional[Path]:
    for suffix in _IDX_SUFFIXES:
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    return None


def has_idx_files(folder: Path) -> bool:
    return all(_idx_file(folder, stem) for stem in IDX_NAMES.values())


def load_idx_folder(folder: Path, spec: DatasetSpec) -> Arrays:
    arrays = {}
    for key, stem in IDX_NAMES.items():
        path = _idx_file(folder, stem)
        if path is None:
            raise NetsightError(f"{folder}: missing {stem} (or {stem}.gz)")
        arrays[key] = (path, read_idx(path))
    for split in ("train", "test"):
        (xp, x), (yp, y) = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 3 or x.shape[1:] != (spec.size, spec.size):
            raise NetsightError(f"{xp}: images are {'x'.join(map(str, x.shape))}, expected N x {spec.size} x {spec.size}")
        if y.ndim != 1 or len(y) != len(x):
            raise NetsightError(f"{yp}: {y.shape[0] if y.ndim else 0} labels for {len(x)} images in {xp.name}")
        check_labels(y, len(spec.classes), str(yp))
        if len(x) == 0:
            raise NetsightError(f"{xp}: holds no images; the {split} split must not be empty")
        _check_classes(dict(zip(*np.unique(y, return_counts=True), strict=True)), spec, str(yp))
    train_x, train_y, test_x, test_y = (
        arrays[k][1][:, None] if k.endswith("_x") else arrays[k][1].astype(np.int64) for k in IDX_NAMES
    )
    return train_x, train_y, test_x, test_y


# --------------------------------------------------------------------------- CIFAR-10 python batches


def has_cifar_batches(folder: Path) -> bool:
    return all((folder / n).is_file() for n in _CIFAR_BATCHES + ["test_batch"])


def load_cifar_batches(folder: Path) -> Arrays:
    train = [read_cifar_batch(folder / n) for n in _CIFAR_BATCHES]
    test_x, test_y = read_cifar_batch(folder / "test_batch")
    train_x, train_y = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    for name, y in (("data_batch_*", train_y), ("test_batch", test_y)):
        check_labels(y, 10, str(folder / name))
        if len(y) == 0:
            raise NetsightError(f"{folder / name}: holds no images; the split must not be empty")
        _check_classes(dict(zip(*np.unique(y, return_counts=True), strict=True)), DATASETS["cifar10"], str(folder / name))
    return train_x, train_y, test_x, test_y


# --------------------------------------------------------------------------- image trees


def _known_class(folder_name: str, spec: DatasetSpec) -> Optional[int]:
    if folder_name in spec.classes:
        return spec.classes.index(folder_name)
    if folder_name.isdigit() and int(folder_name) < len(spec.classes):
        return int(folder_name)
    return None


def _class_indices(folder_names: list[str], spec: DatasetSpec, where: str) -> dict[str, int]:
    """Class folder name -> class index; every folder that is not a class is named in the error."""
    known = {n: _known_class(n, spec) for n in folder_names}
    unexpected = [n for n, index in known.items() if index is None]
    if unexpected:
        raise NetsightError(
            f"{where}: unexpected class folder(s) {', '.join(map(repr, sorted(unexpected)))}: not classes of {spec.name} "
            f"(expected 0..{len(spec.classes) - 1} or {', '.join(spec.classes)}); remove or rename them"
        )
    return {n: index for n, index in known.items() if index is not None}


def _split_dir(root: Path, split: str) -> Optional[Path]:
    for name in (split, split.capitalize()):
        if (root / name).is_dir():
            return root / name
    return None


def has_image_tree(folder: Path) -> bool:
    return all(_split_dir(folder, s) for s in ("train", "test"))


def _stack(images: list[np.ndarray], labels: list[int], where: str) -> tuple[np.ndarray, np.ndarray]:
    if not images:
        raise NetsightError(f"{where}: no images found")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _check_classes(counts: dict[int, int], spec: DatasetSpec, where: str) -> None:
    missing = [spec.classes[i] for i in range(len(spec.classes)) if counts.get(i, 0) == 0]
    if len(missing) == len(spec.classes):
        raise NetsightError(f"{where}: holds no images; the split must not be empty")
    if missing:
        raise NetsightError(f"{where}: no images of class(es) {', '.join(missing)}; every class needs images in every split")


def load_image_tree(folder: Path, spec: DatasetSpec, channels: int, size: int, limit: Optional[dict] = None) -> Arrays:
    """`folder/{train,test}/<class>/*.png|jpg` (or `Train`/`Test`), classes by name or index.

    `limit` maps split -> images kept per class (the first ones in file-name order).
    """
    out: list[np.ndarray] = []
    for split in ("train", "test"):
        split_dir = _split_dir(folder, split)
        assert split_dir is not None
        images, labels, counts = [], [], {}
        class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        indices = _class_indices([d.name for d in class_dirs], spec, str(split_dir))
        for class_dir in class_dirs:
            index = indices[class_dir.name]
            entries = sorted(class_dir.iterdir())
            files = [p for p in entries if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES]
            skipped = [p.name for p in entries if p not in files]
            if skipped:
                warn(
                    f"{class_dir}: skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} that are not image "
                    f"files ({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''}); images end in "
                    f"{', '.join(sorted(_IMAGE_SUFFIXES))}"
                )
            if limit is not None:
                files = files[: limit[split]]
            if not files:
                raise NetsightError(f"{class_dir}: empty class folder (expected image files)")
            for path in files:
                images.append(decode_image(path, str(path), channels, size))
                labels.append(index)
            counts[index] = len(files)
        _check_classes(counts, spec, str(split_dir))
        out.extend(_stack(images, labels, str(split_dir)))
    train_x, train_y, test_x, test_y = out
    return train_x, train_y, test_x, test_y


def _tar_image_members(path: Path) -> dict[str, list[tuple[str, str]]]:
    """split -> [(class folder, member name)] for members like `*/train/<class>/<file>`."""
    members: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    skipped = []
    with _open_tar(path) as tar:
        for info in _tar_iter(tar, path):
            parts = info.name.split("/")
            if info.isfile() and len(parts) >= 3 and parts[-3].lower() in members:
                if Path(parts[-1]).suffix.lower() in _IMAGE_SUFFIXES:
                    members[parts[-3].lower()].append((parts[-2], info.name))
                else:
                    skipped.append(info.name)
    if skipped:
        warn(
            f"{path}: skipped {len(skipped)} member(s) that are not image files ({', '.join(skipped[:5])}"
            f"{', ...' if len(skipped) > 5 else ''})"
        )
    return members


_TAR_ERRORS = (tarfile.TarError,) + COMPRESSION_ERRORS


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except _TAR_ERRORS as exc:
        raise NetsightError(
            f"{path}: not a readable .tar.gz ({type(exc).__name__}: {exc}); replace it with a fresh copy"
        ) from None


def _tar_iter(tar: tarfile.TarFile, path: Path):
    """The members of an open archive; a damaged stream part-way through is a clear error."""
    it = iter(tar)
    while True:
        try:
            info = next(it)
        except StopIteration:
            return
        except _TAR_ERRORS as exc:
            raise NetsightError(
                f"{path}: corrupt or truncated archive ({type(exc).__name__}: {exc}); replace it with a fresh copy"
            ) from None
        yield info


def is_image_tarball(path: Path) -> bool:
    return path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar"))


def load_image_tarball(path: Path, spec: DatasetSpec, channels: int, size: int, limit: Optional[dict] = None) -> Arrays:
    members = _tar_image_members(path)
    if not members["train"] or not members["test"]:
        raise NetsightError(f"{path}: expected members like <top>/train/<class>/<image> and <top>/test/<class>/<image>")
    wanted: dict[str, tuple[str, int]] = {}  # member name -> (split, class index)
    for split, entries in members.items():
        by_class: dict[int, list[str]] = {}
        indices = _class_indices(sorted({c for c, _ in entries}), spec, f"{path}:{split}")
        for class_name, name in entries:
            by_class.setdefault(indices[class_name], []).append(name)
        _check_classes({k: len(v) for k, v in by_class.items()}, spec, f"{path}:{split}")
        for index, names in by_class.items():
            names = sorted(names, key=lambda n: n.rsplit("/", 1)[-1])
            for name in names[: limit[split]] if limit else names:
                wanted[name] = (split, index)
    decoded: dict[str, np.ndarray] = {}
    with _open_tar(path) as tar:  # one sequential pass: fast on gzip streams
        for info in _tar_iter(tar, path):
            if info.name in wanted:
                try:
                    member = tar.extractfile(info)
                    if member is None:  # the wanted names are regular files (_tar_image_members)
                        raise NetsightError(f"{path}:{info.name}: not a regular file in the archive")
                    data = member.read()
                except _TAR_ERRORS as exc:
                    raise NetsightError(
                        f"{path}:{info.name}: corrupt or truncated archive ({type(exc).__name__}: {exc})"
                    ) from None
                decoded[info.name] = decode_image(data, f"{path}:{info.name}", channels, size)
    lost = sorted(set(wanted) - set(decoded))
    if lost:
        raise NetsightError(
            f"{path}: {len(lost)} member(s) listed but unreadable (first: {lost[0]}); replace it with a fresh copy"
        )
    out: list[np.ndarray] = []
    for split in ("train", "test"):
        names = sorted((n for n, (s, _) in wanted.items() if s == split), key=lambda n: (wanted[n][1], n.rsplit("/", 1)[-1]))
        out.extend(_stack([decoded[n] for n in names], [wanted[n][1] for n in names], f"{path}:{split}"))
    train_x, train_y, test_x, test_y = out
    return train_x, train_y, test_x, test_y


# --------------------------------------------------------------------------- the course subset


def to_assignment(images: np.ndarray) -> np.ndarray:
    """32x32 RGB uint8 [N,3,32,32] -> the course's 28x28 luma [N,1,28,28] (PIL: 'L', then bilinear)."""
    from PIL import Image

    out = np.empty((len(images), 1, 28, 28), dtype=np.uint8)
    for i, img in enumerate(images):
        gray = Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).convert("L")
        out[i, 0] = np.asarray(gray.resize((28, 28), Image.Resampling.BILINEAR))
    return out


def first_per_class(x: np.ndarray, y: np.ndarray, per_class: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The first `per_class` images of each class, class by class (the course's order)."""
    keep = []
    for c in range(10):
        idx = np.flatnonzero(y == c)[:per_class]
        if len(idx) < per_class:
            raise NetsightError(f"{where}: only {len(idx)} images of class {c}, the course subset needs {per_class}")
        keep.append(idx)
    order = np.concatenate(keep)
    return x[order], y[order]


def derive_assignment(arrays: Arrays, where: str) -> Arrays:
    train_x, train_y, test_x, test_y = arrays
    train_x, train_y = first_per_class(train_x, train_y, ASSIGNMENT_PER_CLASS["train"], where)
    test_x, test_y = first_per_class(test_x, test_y, ASSIGNMENT_PER_CLASS["test"], where)
    return to_assignment(train_x), train_y, to_assignment(test_x), test_y


# --------------------------------------------------------------------------- --data-root


def _candidates(root: Path) -> list[Path]:
    """`root` and its folders up to two levels down, shallow first, in name order."""
    level1 = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    level2 = [q for p in level1 for q in sorted(p.iterdir()) if q.is_dir() and not q.name.startswith(".")]
    return [root, *level1, *level2]


def _tarballs(folders: list[Path]) -> list[Path]:
    return [f for d in folders for f in sorted(d.iterdir()) if is_image_tarball(f)]


def _find_idx(root: Path, spec: DatasetSpec) -> Optional[Path]:
    for folder in _candidates(root):
        rel = str(folder.relative_to(root)).lower()
        # the two MNIST-style sets share file names: keep each to its own folders
        if folder != root and (("fashion" in rel) != (spec.name == "fashion-mnist")):
            continue
        if has_idx_files(folder):
            return folder
    return None


def _find_cifar10(root: Path, spec: DatasetSpec) -> Optional[tuple[Path, Callable[[], Arrays]]]:
    cifar = DATASETS["cifar10"]
    if is_image_tarball(root):
        return root, lambda: load_image_tarball(root, cifar, 3, 32)
    folders = _candidates(root)
    for folder in folders:
        if has_cifar_batches(folder):
            return folder, lambda folder=folder: load_cifar_batches(folder)
        if has_image_tree(folder) and _tree_class_names(folder) & (set(cifar.classes) | _DIGITS):
            return folder, lambda folder=folder: load_image_tree(folder, cifar, 3, 32)
    for tarball in _tarballs(folders):
        return tarball, lambda tarball=tarball: load_image_tarball(tarball, cifar, 3, 32)
    return None


_DIGITS = {str(i) for i in range(10)}


def _tree_class_names(folder: Path) -> set[str]:
    split = _split_dir(folder, "train")
    return {p.name for p in split.iterdir() if p.is_dir()} if split else set()


def _find_course_layout(root: Path, spec: DatasetSpec) -> Optional[Path]:
    if root.is_file():
        return None
    for folder in _candidates(root):
        if (folder / "Train").is_dir() and (folder / "Test").is_dir() and _tree_class_names(folder) & _DIGITS:
            return folder
    return None


def load_from_root(root: Path, spec: DatasetSpec) -> tuple[Arrays, str]:
    if not root.exists():
        raise NetsightError(f"--data-root {root}: no such file or folder")
    root = root.resolve()
    if spec.name in ("mnist", "fashion-mnist"):
        found = _find_idx(root, spec) if root.is_dir() else None
        if found is None:
            tv = _TORCHVISION_FOLDER[spec.name]
            raise NetsightError(
                f"--data-root {root}: no {spec.name} found; expected the four IDX files "
                f"({', '.join(IDX_NAMES.values())}, gzipped or not) in it or in a subfolder such as {tv}/raw"
            )
        return load_idx_folder(found, spec), f"path:{found}"
    if spec.name == "cifar10-assignment":
        course = _find_course_layout(root, spec)
        if course is not None:
            return load_image_tree(course, spec, 1, 28), f"path:{course}"
    found_cifar = _find_cifar10(root, spec)
    if found_cifar is None:
        extra = " or the course layout Train/<0-9>/*.png + Test/<0-9>/*.png" if spec.name == "cifar10-assignment" else ""
        raise NetsightError(
            f"--data-root {root}: no CIFAR-10 found; expected cifar-10-batches-py/, train/<class>/ + test/<class>/ "
            f"image folders, or their .tar.gz{extra}"
        )
    where, load = found_cifar
    arrays = load()
    if spec.name == "cifar10-assignment":
        return derive_assignment(arrays, str(where)), f"path:{where} (course subset derived)"
    return arrays, f"path:{where}"


# --------------------------------------------------------------------------- --download


def download(spec: DatasetSpec, cache: Path) -> tuple[Arrays, str]:
    """Fetch the official files with torchvision into `cache` (reused when already there)."""
    from torchvision import datasets
    from torchvision.datasets.utils import download_and_extract_archive

    cache.mkdir(parents=True, exist_ok=True)
    if spec.name in ("mnist", "fashion-mnist"):
        cls = datasets.MNIST if spec.name == "mnist" else datasets.FashionMNIST
        raw = cache / cls.__name__ / "raw"
        if not has_idx_files(raw):
            try:
                cls(str(cache), train=True, download=True)
            except (RuntimeError, OSError) as exc:
                raise NetsightError(f"--download {spec.name}: download into {cache} failed ({exc})") from None
        return load_idx_folder(raw, spec), f"download:{raw}"
    folder = cache / datasets.CIFAR10.base_folder
    if not has_cifar_batches(folder):
        cls = datasets.CIFAR10
        try:
            download_and_extract_archive(cls.url, str(cache), filename=cls.filename, md5=cls.tgz_md5)
        except (RuntimeError, OSError) as exc:
            raise NetsightError(f"--download {spec.name}: download into {cache} failed ({exc})") from None
    arrays = load_cifar_batches(folder)
    if spec.name == "cifar10-assignment":
        return derive_assignment(arrays, str(folder)), f"download:{folder} (course subset derived)"
    return arrays, f"download:{folder}"


# --------------------------------------------------------------------------- bundled copy


def load_bundled(spec: DatasetSpec) -> tuple[Arrays, str]:
    if not spec.bundled:
        bundled = ", ".join(n for n, s in DATASETS.items() if s.bundled)
        raise NetsightError(
            f"--data {spec.name}: not bundled with netsight (bundled: {bundled}); pass --data-root DIR with a copy, or --download"
        )
    folder = BUNDLED_DIR / spec.name
    arrays = load_idx_folder(folder, spec)
    if spec.channels != 1:  # pragma: no cover - only grayscale sets are bundled
        raise AssertionError
    return arrays, "bundled"
