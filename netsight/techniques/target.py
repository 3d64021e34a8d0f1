"""The target of every technique: one model with its images, whatever they came from.

A `Target` holds what a technique needs and nothing it has to look up elsewhere: the model,
its images (an `ImageSource`, streamed in batches, pixels in [0, 1]), their labels as indices
of the model's outputs, the names of those outputs, the normalisation applied inside the
model's call, a title for the figures, the folder the figures and tables go to, and, for a
netsight run directory, the run itself (config, summary, weight snapshots).

Two doors open one: `open_run_target(RUN_DIR)` (a netsight run and its dataset's split) and
`open_model_target(SPEC, ...)` (any PyTorch model, `--model`, with a folder of images or a
netsight dataset's test set). Both check everything they can (the model loads, the first
batch of images goes through it, its outputs are class scores) and write nothing, so a
technique written once against a target runs the same code on both and writes the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch
from torch import nn

from ..data.images import ImageSource
from ..errors import NetsightError, warn

if TYPE_CHECKING:
    from ..train.rundir import RunDir

SPLITS = ("test", "train")


@dataclass
class Target:
    model: nn.Module
    images: ImageSource
    labels: Optional[torch.Tensor]  # the images' classes as indices of the model's outputs; None: use predictions
    classes: tuple[str, ...]  # the names of the model's outputs
    title: str  # names the model on every figure
    out: Optional[Path]  # figures/ and tables/ go under it (a run directory, or --out)
    device: torch.device
    mean: Optional[tuple[float, ...]] = None  # normalisation inside the model's call (None: pixels in [0, 1] as they are)
    std: Optional[tuple[float, ...]] = None
    progress: bool = False
    kind: str = "cnn"  # cnn | recurrent: which techniques apply (registry.applies)
    run: Any = None  # netsight.train.rundir.Run for a netsight run directory, else None
    pixels: Optional[torch.Tensor] = None  # a run's split as the uint8 tensor it trained on (evolution, sequence)
    images_word: str = "images"  # what figures call the images ("test images" for a run's test split)
    record: dict = field(default_factory=dict)  # what opened it, for inspection.json

    @property
    def norm(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @property
    def figures(self) -> Path:
        return self.folder / "figures"

    @property
    def tables(self) -> Path:
        return self.folder / "tables"

    @property
    def folder(self) -> Path:
        """`out`, where a technique writes: a clear error for a target opened without one."""
        if self.out is None:
            raise NetsightError("this target has no output folder (open it with out=...)")
        return self.out

    def run_pixels(self) -> torch.Tensor:
        """`pixels`, checked: a clear error for a target that is not a netsight run's split."""
        if self.pixels is None:
            raise NetsightError(f"{self.title}: this needs a netsight run directory's images (its split's pixels)")
        return self.pixels

    def snapshots(self) -> list[tuple[int, Path]]:
        """A run's weight snapshots in training order, ending with its final weights; [] for a model."""
        if self.run is None:
            return []
        snaps = snapshot_paths(self.run.dir)
        done = int(self.run.summary.get("iterations_done") or 0)
        if snaps and done and all(i != done for i, _ in snaps):
            snaps.append((done, self.run.dir.weights))
        return snaps


def snapshot_paths(rundir: RunDir) -> list[tuple[int, Path]]:
    """A run directory's weight snapshots (`netsight train --snapshots`), (iteration, file) in training order."""
    paths = sorted(rundir.snapshots.glob("iter_*.safetensors")) if rundir.snapshots.is_dir() else []
    return [(int(p.stem.split("_")[1]), p) for p in paths]


def spread(n_total: int, n: int) -> torch.Tensor:
    """n indices spread evenly over a set (the course's test set is ordered by class)."""
    if n < 1:
        raise NetsightError(f"--count {n}: expected an integer >= 1")
    return torch.linspace(0, n_total - 1, min(n, n_total)).round().long()


def layer_file(layer: str) -> str:
    """A layer name as it appears in file names (nested modules' dots stay, slashes do not)."""
    return layer.replace("/", "_")


# ------------------------------------------------------------------ a netsight run directory


def open_run_target(
    path: str | Path,
    split: str = "test",
    data_root: Optional[str | Path] = None,
    download: bool = False,
    device: str = "cpu",
    progress: bool = False,
    dataset=None,
) -> Target:
    """A trained netsight run and its dataset's `split`; figures and tables go into the run directory.
    `dataset`: an already loaded `Dataset` (a suite shares one per process)."""
    from ..data import load_dataset
    from ..data.images import tensor_images
    from ..models import get_entry
    from ..train.loop import resolve_device
    from ..train.rundir import open_run

    if split not in SPLITS:
        raise NetsightError(f"--split {split!r}: expected test or train")
    run = open_run(path)
    if not run.dir.weights.is_file():
        status = run.summary.get("status", "unknown")
        raise NetsightError(f"{run.path}: no model.safetensors (run status: {status}); finish it with netsight train --resume")
    dev = resolve_device(device)
    model = run.model(dev)
    data = dataset if dataset is not None else load_dataset(run.config.data, data_root, download)
    x, y = (data.test_images, data.test_labels) if split == "test" else (data.train_images, data.train_labels)
    source = tensor_images(x, y, data.classes, f"the {data.name} {split} set ({len(x):,} images)")
    source.names = [f"{data.name} {split} {i}" for i in range(len(x))]
    kind = "recurrent" if get_entry(run.config.model).family == "rnn" else "cnn"
    title = f"{run.config.model} on {run.config.data} (seed {run.config.seed})"
    return Target(
        model,
        source,
        y,
        tuple(data.classes),
        title,
        run.path,
        dev,
        progress=progress,
        kind=kind,
        run=run,
        pixels=x,
        images_word=f"{split} images",
        record={"run": str(run.path), "split": split},
    )


# ------------------------------------------------------------------ any model (--model SPEC)


def open_model_target(
    spec: str,
    weights: Optional[str | Path] = None,
    out: Optional[str | Path] = None,
    images: Optional[str | Path] = None,
    data: Optional[str] = None,
    input_size: Optional[int] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    device: str = "cpu",
    data_root=None,
    download: bool = False,
    progress: bool = False,
    seed: int = 0,
    labelled: bool = True,
) -> Target:
    """Any PyTorch model SPEC (`models.external`) with a folder of images or a netsight dataset's
    test set, as the model takes them. Nothing is written: `out` is where the technique will write.
    Without `weights` the model keeps the initialisation `seed` draws (the caller's random state is
    left as it was), so the same command gives the same network. `labelled` False: the images' classes
    are not read (a use that needs none, e.g. the microscope, gets no warning about them)."""
    from ..data import load_dataset
    from ..data.images import folder_images, tensor_images
    from ..models.external import load_external_model
    from ..train.loop import resolve_device

    if (images is None) == (data is None):
        raise NetsightError("inspect --model: give the images to look at with --images DIR or --data NAME (one of them)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = load_external_model(spec, weights, input_size, tuple(mean) if mean else None, tuple(std) if std else None)
    dev = resolve_device(device)
    model.module.to(dev)
    prep = model.preprocessing
    if images is not None:
        source = folder_images(images, model.input_channels, prep.resize, prep.crop, progress=progress)
    else:
        ds = load_dataset(str(data), data_root, download)
        x = ds.test_images
        if prep.crop:
            from torchvision.transforms.v2 import functional as TF

            x = TF.center_crop(TF.resize(x, [prep.resize or prep.crop], antialias=True), [prep.crop, prep.crop])
        source = tensor_images(x, ds.test_labels, ds.classes, f"the {ds.name} test set ({len(x):,} images)")
        source.names = [f"{ds.name} test {i}" for i in range(len(x))]
    if source.shape[0] != model.input_channels:
        raise NetsightError(
            f"{images or data}: images have {source.shape[0]} channel(s), the model {spec} takes {model.input_channels}"
        )
    weights_name = Path(model.weights).name if model.weights else f"random initialisation, seed {seed}"
    target = Target(
        model.module,
        source,
        None,
        (),
        f"{model.name} ({weights_name})",
        Path(out) if out is not None else None,
        dev,
        prep.mean,
        prep.std,
        progress=progress,
        kind=_kind(model.module),
    )
    n = _outputs(target)
    cats = model.categories
    target.classes = tuple(cats) if cats and len(cats) == n else tuple(str(i) for i in range(n))
    target.labels = _model_labels(source, target.classes, data is not None) if labelled else None
    target.record = {
        "model": model.name,
        "weights": model.weights,
        "seed": None if model.weights else seed,
        "input_channels": model.input_channels,
        "preprocessing": {"resize": prep.resize, "crop": prep.crop, "mean": prep.mean, "std": prep.std},
    }
    return target


def _kind(module: nn.Module) -> str:
    return "cnn" if any(isinstance(m, nn.Conv2d) for m in module.modules()) else "other"


def _outputs(t: Target) -> int:
    """The number of class scores the model gives: its first image goes through it once."""
    from ..ops.hooks import normalised_input

    with torch.no_grad(), normalised_input(t.model, **t.norm):
        was_training = t.model.training
        t.model.eval()
        try:
            out = t.model(t.images.load([0]).to(t.device))
        finally:
            t.model.train(was_training)
    if not torch.is_tensor(out) or out.dim() != 2:
        shape = tuple(out.shape) if torch.is_tensor(out) else f"a {type(out).__name__}, not a tensor"
        raise NetsightError(
            f"--model {t.record.get('model', t.title)}: the model's output is {shape}; expected class scores [N, classes]"
        )
    return out.shape[1]


def _model_labels(src: ImageSource, names: tuple[str, ...], from_dataset: bool) -> Optional[torch.Tensor]:
    """The images' classes as the model's output indices: class folders named like the model's
    categories (case and '_' vs ' ' ignored) or as integers in range; a netsight dataset whose class
    count equals the model's outputs. Otherwise None (the techniques use the model's predictions)."""
    if src.labels is None or src.classes is None:
        return None
    n = len(names)

    def key(s: str) -> str:
        return s.lower().replace("_", " ").strip()

    by_name = {key(c): i for i, c in enumerate(names)}
    if all(key(c) in by_name for c in src.classes):
        mapping = [by_name[key(c)] for c in src.classes]
    elif all(c.isdigit() and int(c) < n for c in src.classes):
        mapping = [int(c) for c in src.classes]
    elif from_dataset and len(src.classes) == n:
        mapping = list(range(n))
    else:
        warn(
            f"{src.description}: the class names ({', '.join(src.classes[:4])}{' ...' if len(src.classes) > 4 else ''}) "
            f"do not name the model's {n} outputs; occlusion and invariance follow the model's own prediction per image"
        )
        return None
    return torch.tensor(mapping)[src.labels]
