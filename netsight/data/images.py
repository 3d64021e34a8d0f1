"""Images for inspecting any model: a folder of image files of any size, or a tensor.

An `ImageSource` hands out float batches in [0, 1] ([N,C,H,W]) on demand, so an analysis can
stream a folder of any size with memory that does not grow with it, and fetch single images
again by index (top-9 projects the winners after the stream). A folder's images are listed
once (paths only) and decoded batch by batch; class subfolders are optional: when every image
lies in a subfolder `ROOT/<class>/...`, the subfolder names are the labels.

Unreadable files: before anything uses the folder, every image file is decoded once by exactly
the function the batches use (decode, resize, crop; in threads, nothing kept but the size). A file
that fails is skipped with a warning naming it and recorded in `ImageSource.skipped`; only a
folder with no readable image left is refused. Checking up front, rather than when a batch meets
the file, keeps the set of images, their indices (top-9 fetches winners again by index) and every
statistic over them fixed from the start, and a bad size is named before any work is done. Its
cost is one decoding pass (measured in docs/robustness.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from ..text import plural
from ..errors import NetsightError, warn
from .formats import decode_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


@dataclass
class ImageSource:
    names: list[str]  # one per image (file path relative to the folder, or "image N")
    shape: tuple[int, int, int]  # (C, H, W) of every image handed out
    labels: Optional[torch.Tensor]  # int64 [N], or None when the images carry no class
    classes: Optional[tuple[str, ...]]
    _load: Callable[[list[int]], torch.Tensor]
    description: str = ""
    # image files of the folder left out because they cannot be read: path relative to the folder -> why
    # (in listing order; every index refers to `names`, which holds only the readable ones)
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def load(self, indices) -> torch.Tensor:
        """Float images in [0, 1] for these indices, [n, C, H, W] (CPU)."""
        return self._load([int(i) for i in indices])

    def batches(self, batch_size: int, progress: bool = False, what: str = "images") -> Iterator[tuple[int, torch.Tensor]]:
        """(start index, float batch) over all images, in order; a progress bar with ETA if asked."""
        from ..progress import bar

        with bar(len(self), what, progress, "img") as shown:  # none for a pass too short to watch
            for start in range(0, len(self), batch_size):
                x = self.load(range(start, min(start + batch_size, len(self))))
                yield start, x
                shown.update(len(x))


def tensor_images(
    images: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    classes: Optional[tuple[str, ...]] = None,
    description: str = "a tensor",
) -> ImageSource:
    """Images already in memory: uint8 (0..255) or float in [0, 1], [N,C,H,W]."""
    if not torch.is_tensor(images) or images.dim() != 4:
        raise NetsightError(f"images: expected a tensor [N, C, H, W], got {getattr(images, 'shape', type(images).__name__)}")
    if len(images) == 0:
        raise NetsightError("images: the tensor holds no images")
    if labels is not None and len(labels) != len(images):
        raise NetsightError(f"labels: {len(labels)} labels for {len(images)} images")

    def load(indices: list[int]) -> torch.Tensor:
        x = images[indices]
        return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()

    names = [f"image {i}" for i in range(len(images))]
    return ImageSource(names, tuple(images.shape[1:]), labels, classes, load, description)  # type: ignore[arg-type]  # a 4-D tensor: its last three sizes are (C, H, W)


def list_image_folder(root: str | Path) -> tuple[list[Path], Optional[list[int]], Optional[tuple[str, ...]]]:
    """The image files under `root` (sorted), with labels from class subfolders when every image
    lies in one."""
    root = Path(root)
    if root.is_file():
        raise NetsightError(f"--images {root}: a file; expected a folder of images (put a single image in a folder of its own)")
    if not root.is_dir():
        raise NetsightError(f"--images {root}: no such folder")
    try:
        top_files = sorted(p for p in root.iterdir() if p.is_file())
        subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        nested = {d.name: sorted(p for p in d.rglob("*") if p.is_file()) for d in subfolders}
    except OSError as exc:
        from ..fileio import os_error

        raise os_error(root, exc, "cannot read") from None
    is_image = lambda p: p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")  # noqa: E731
    skipped = [p for p in top_files + [q for files in nested.values() for q in files] if not is_image(p)]
    if skipped:
        warn(
            f"--images {root}: skipped {plural(len(skipped), 'file')} that "
            + ("is not an image" if len(skipped) == 1 else "are not images")
            + f", e.g. {skipped[0]}"
        )
    top_images = [p for p in top_files if is_image(p)]
    classes = tuple(name for name, files in nested.items() if any(is_image(p) for p in files))
    if top_images or not classes:
        paths = top_images + [p for name in nested for p in nested[name] if is_image(p)]
        labels = None
        classes_out = None
    else:
        paths, labels = [], []
        for c, name in enumerate(classes):
            images = [p for p in nested[name] if is_image(p)]
            paths += images
            labels += [c] * len(images)
        classes_out = classes
    if not paths:
        raise NetsightError(
            f"--images {root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder or its subfolders"
        )
    return paths, labels, classes_out


MAX_WARNED = 10  # skipped files named one per line; the rest are counted (all are in ImageSource.skipped)


def folder_images(
    root: str | Path, channels: int, resize: Optional[int] = None, crop: Optional[int] = None, progress: bool = False
) -> ImageSource:
    """A folder's images as the model takes them: converted to `channels` (1: grey, 3: RGB),
    the shorter side resized to `resize` and the centre `crop` x `crop` cut (torchvision's
    bilinear, antialiased resize); without `crop` every image must have the first one's size.
    Files that cannot be read are skipped with a warning (`ImageSource.skipped`)."""
    from torchvision.transforms.v2 import functional as TF

    if channels not in (1, 3):
        raise NetsightError(f"the model takes {channels} input channels; image files give 1 (grey) or 3 (RGB)")
    root = Path(root)
    paths, labels, classes = list_image_folder(root)

    def one(path: Path) -> torch.Tensor:
        x = torch.from_numpy(decode_image(path, str(path), channels, None).copy())
        if resize:
            x = TF.resize(x, [resize], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        if crop:
            x = TF.center_crop(x, [crop, crop])
        return x

    shapes = _check_readable(paths, one, progress)
    skipped = {str(p.relative_to(root)): reason for p, reason in zip(paths, shapes, strict=True) if isinstance(reason, str)}
    if skipped:
        _warn_skipped(root, skipped, len(paths))
    keep = [i for i, s in enumerate(shapes) if not isinstance(s, str)]
    if not keep:
        first = next(iter(skipped.items()))
        raise NetsightError(
            f"--images {root}: none of its {plural(len(paths), 'image file')} can be read, e.g. {first[0]}: {first[1]}"
        )
    shape = shapes[keep[0]]
    odd = next((i for i in keep if shapes[i] != shape), None)
    if odd is not None:  # named before any work, not when a batch meets it
        raise _size_error(paths[keep[0]], shape, shapes[odd], paths[odd])
    paths = [paths[i] for i in keep]
    labels = [labels[i] for i in keep] if labels is not None else None

    def load(indices: list[int]) -> torch.Tensor:
        out = []
        for i in indices:
            try:
                x = one(paths[i])
            except NetsightError as exc:
                raise NetsightError(f"{exc}; it was readable when netsight listed {root}: did it change since?") from None
            if tuple(x.shape) != shape:
                raise _size_error(paths[0], shape, tuple(x.shape), paths[i])
            out.append(x)
        return torch.stack(out).float().div_(255.0)

    names = [str(p.relative_to(root)) for p in paths]
    return ImageSource(
        names,
        shape,
        torch.tensor(labels) if labels is not None else None,
        classes,
        load,
        f"{len(paths):,} images from {root}",
        skipped,
    )


def _size_error(first: Path, shape, other_shape, path: Path) -> NetsightError:
    return NetsightError(
        f"{path}: image is {other_shape[2]}x{other_shape[1]}, the first image ({first}) is "
        f"{shape[2]}x{shape[1]}; give --input-size N to resize and crop them all to N x N"
    )


def _check_readable(paths: list[Path], one: Callable[[Path], torch.Tensor], progress: bool) -> list:
    """Decode every file once with `one` (threads: Pillow and torch release the GIL); per file its
    shape after `one`, or the reason (a str) it cannot be read."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    def check(path: Path):
        try:
            return tuple(one(path).shape)
        except NetsightError as exc:  # decode_image: not an image Pillow can read, or an OS error reading it
            text = " ".join(str(exc).split())
            return text[len(str(path)) + 2 :] if text.startswith(f"{path}: ") else text

    workers = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
    from ..progress import bar

    shown = bar(len(paths), "checking images", progress, "img")  # shown only when the check takes a while
    results = []
    pool = ThreadPoolExecutor(workers)
    try:
        for r in pool.map(check, paths, chunksize=16):
            results.append(r)
            shown.update(1)
    except BaseException:  # Ctrl-C: do not decode the rest of the folder first
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        shown.close()
    pool.shutdown()
    return results


def _warn_skipped(root: Path, skipped: dict[str, str], total: int) -> None:
    for name, reason in list(skipped.items())[:MAX_WARNED]:
        warn(f"--images {root}: skipped {name}: {reason}")
    if len(skipped) > MAX_WARNED:
        warn(
            f"--images {root}: skipped {plural(len(skipped) - MAX_WARNED, 'more unreadable image file')} "
            f"({len(skipped)} of {total} in all)"
        )
