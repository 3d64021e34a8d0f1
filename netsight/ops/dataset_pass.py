"""The dataset pass of the microscope: for every unit (feature map) of many layers at once, the k
images that drive it most, over a folder of any size, in one streamed pass (the dataset examples
of Zeiler & Fergus 2014, Figure 2, and of OpenAI Microscope, for a whole network).

- **One forward per batch feeds every layer.** A forward hook on each layer's target module (the
  ReLU right after a conv where there is one, as top-9 and the deconvnet choose it:
  `deconvnet_graph.resolve_graph_targets`) reduces its output at once to each image's strongest
  unit per map (`topk.unit_maxima`). Memory: one batch plus layers x maps x k entries, whatever the
  number of images.
- **Exact, and mergeable.** Every selection is `topk.select_top`'s one total order (activation
  descending, then image index ascending), so the top-k of any split of the images - batches,
  shards on several workers, a pass resumed after Ctrl-C or a kill - equals one pass over all of
  them. `UnitTopK.merge` joins states that cover disjoint images (associative and commutative).
  Exact given the activations: a backend whose convolutions round differently at another batch
  size can change an activation's last bits, and so a near tie, between two splits.
- **Resumable.** With `state=PATH` the partial state (the top-k so far and which images it covers)
  is written there atomically every `save_every` seconds, when the pass ends, and on Ctrl-C; a rerun
  with the same settings continues where the file stops (a kill loses at most `save_every` seconds).
  A file made with other settings (weights, layers, k, images, input size, normalisation, shard) is
  refused with one line naming what differs, and left as it was.
- The next batch is decoded in a background thread while the model runs on this one.
- **Split over a Ray cluster** (`dataset_pass_on_ray`): the images cut into contiguous shards, each a Ray task
  running `dataset_pass` on its shard (the model and the image source travel by Ray's object store; a folder of
  images must lie at the same path on every node), merged exactly into the state as each finishes, so an
  interrupted cluster pass resumes with the shards it lacks.

Tested against a brute-force ranking, ties included, in tests/ops/test_dataset_pass.py.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

from ..data.images import ImageSource
from ..errors import NetsightError
from .deconvnet_graph import resolve_graph_targets
from .hooks import evaluating, forward_hooks, normalised_input
from .stages import conv_layers
from .topk import select_top, unit_maxima

FORMAT = "netsight dataset pass 1"  # the state file's format, in its metadata
SAVE_EVERY_S = 60.0  # seconds between two saves of the state while the pass runs

Ranges = list[tuple[int, int]]  # sorted, disjoint [start, stop) image index ranges


@dataclass
class LayerTop:
    """One layer's top-k: per map, the k strongest images (fewer while fewer images are covered)."""

    target: str  # the module whose output was ranked (a conv's ReLU where it has one)
    values: torch.Tensor  # [maps, m] float32, in netsight's order (descending)
    images: torch.Tensor  # [maps, m] int64: index into the image source
    positions: torch.Tensor  # [maps, m, 2] int64: (y, x) of the image's strongest unit in the map


@dataclass
class UnitTopK:
    """The state of a dataset pass: each layer's top-k over the images it covers so far."""

    k: int
    n_images: int  # the number of images of the source (all shards together)
    settings: dict[str, str]  # what the pass ran with: compared on resume and before a merge
    layers: dict[str, LayerTop]  # in the order asked for
    covered: Ranges = field(default_factory=list)

    @property
    def images_covered(self) -> int:
        return sum(b - a for a, b in self.covered)

    def merge(self, other: "UnitTopK") -> "UnitTopK":
        """The state of both passes together: exactly the pass over the union of their images."""
        if other.settings != self.settings or other.k != self.k or other.n_images != self.n_images:
            raise NetsightError(f"cannot merge two dataset passes made with other settings ({_differences(self, other)})")
        overlap = _intersect(self.covered, other.covered)
        if overlap:
            a, b = overlap[0]
            raise NetsightError(f"cannot merge two dataset passes that both hold images {a}-{b - 1}: an image would count twice")
        layers = {name: _merge_layer(top, other.layers[name], self.k) for name, top in self.layers.items()}
        return UnitTopK(self.k, self.n_images, dict(self.settings), layers, _union(self.covered, other.covered))

    def save(self, path: str | Path) -> Path:
        """Write the state atomically (safetensors: the tensors, and the settings and coverage as metadata)."""
        from safetensors.torch import save

        from ..fileio import write_bytes

        tensors: dict[str, torch.Tensor] = {}
        for i, top in enumerate(self.layers.values()):
            tensors[f"{i}.values"] = top.values.contiguous()
            tensors[f"{i}.images"] = top.images.contiguous()
            tensors[f"{i}.positions"] = top.positions.contiguous()
        meta = {
            "format": FORMAT,
            "k": str(self.k),
            "n_images": str(self.n_images),
            "layers": json.dumps([[name, top.target] for name, top in self.layers.items()]),
            "settings": json.dumps(self.settings, sort_keys=True),
            "covered": json.dumps(self.covered),
        }
        return write_bytes(path, save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> "UnitTopK":
        """A state written by `save`; a file that is not one is a clear error naming it."""
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ValueError(f"its format is {meta.get('format')!r}, expected {FORMAT!r}")
                names = json.loads(meta["layers"])
                layers = {
                    name: LayerTop(
                        target, f.get_tensor(f"{i}.values"), f.get_tensor(f"{i}.images"), f.get_tensor(f"{i}.positions")
                    )
                    for i, (name, target) in enumerate(names)
                }
                state = cls(
                    int(meta["k"]),
                    int(meta["n_images"]),
                    json.loads(meta["settings"]),
                    layers,
                    [(int(a), int(b)) for a, b in json.loads(meta["covered"])],
                )
        except Exception as exc:  # a missing key, bad JSON, a damaged header (safetensors' own error class), a read error
            raise NetsightError(
                f"{path}: cannot be read as a dataset pass's state ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                f"delete it to start the pass over"
            ) from None
        return state


def _merge_layer(a: LayerTop, b: LayerTop, k: int) -> LayerTop:
    if a.values.shape[1] == 0 or b.values.shape[1] == 0:  # a state that covers no image yet
        return a if b.values.shape[1] == 0 else LayerTop(a.target, b.values, b.images, b.positions)
    values, images, positions = select_top(
        torch.cat([a.values, b.values], 1), torch.cat([a.images, b.images], 1), torch.cat([a.positions, b.positions], 1), k
    )
    return LayerTop(a.target, values, images, positions)


def _union(a: Ranges, b: Ranges) -> Ranges:
    out: Ranges = []
    for start, stop in sorted(a + b):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    return [(max(s, t), min(e, f)) for s, e in a for t, f in b if max(s, t) < min(e, f)]


def _missing(covered: Ranges, start: int, stop: int) -> Ranges:
    """The parts of [start, stop) that `covered` does not hold."""
    out, at = [], start
    for a, b in covered:
        if b <= at or a >= stop:
            continue
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < stop:
        out.append((at, stop))
    return out


def _differences(a: UnitTopK, b: UnitTopK) -> str:
    keys = sorted(set(a.settings) | set(b.settings))
    diff = [
        f"{key}: {a.settings.get(key)} vs {b.settings.get(key)}" for key in keys if a.settings.get(key) != b.settings.get(key)
    ]
    if a.k != b.k:
        diff.append(f"k: {a.k} vs {b.k}")
    if a.n_images != b.n_images:
        diff.append(f"images: {a.n_images} vs {b.n_images}")
    return "; ".join(diff)


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers (names, shapes, dtypes and bytes), 16 hex digits."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _images_fingerprint(source: ImageSource) -> str:
    h = hashlib.sha256(json.dumps([list(source.shape), source.names]).encode())
    return f"{len(source)} images {tuple(source.shape)}, {h.hexdigest()[:16]}"


def dataset_pass(
    model: nn.Module,
    source: ImageSource,
    layers: Optional[Sequence[str]] = None,
    k: int = 9,
    batch_size: int = 64,
    state: Optional[str | Path] = None,
    shard: Optional[tuple[int, int]] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    progress: bool = False,
    save_every: float = SAVE_EVERY_S,
    check_only: bool = False,
) -> UnitTopK:
    """Every unit's top-k images over `source` (or its images [start, stop) with `shard`) for each
    of `layers` (default: every Conv2d), in one streamed pass; see the module's docstring. With
    `state`, the pass saves its progress there and a rerun resumes from it; the returned state is
    complete (it covers the shard) unless the pass was interrupted."""
    from ..progress import bar

    if not isinstance(k, int) or k < 1:
        raise NetsightError(f"--top-k {k!r}: expected a whole number of images of at least 1")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise NetsightError(f"--batch-size {batch_size!r}: expected a whole number of at least 1")
    if len(source) == 0:
        raise NetsightError(f"{source.description or 'the images'}: no images to pass over")
    start, stop = shard if shard is not None else (0, len(source))
    if not 0 <= start < stop <= len(source):
        raise NetsightError(f"shard {start}-{stop}: expected 0 <= start < stop <= {len(source)} (the number of images)")
    layers = list(layers) if layers else conv_layers(model)
    if len(set(layers)) != len(layers):
        raise NetsightError(f"--layers {','.join(layers)}: a layer is named twice")
    device = next(model.parameters()).device
    with normalised_input(model, mean, std), evaluating(model):
        targets = resolve_graph_targets(model, layers, source.load([start]).to(device), flag="--layers")
    settings = {
        "weights": weights_fingerprint(model),
        "layers": ",".join(f"{name}={targets[name]}" for name in layers),
        "images": _images_fingerprint(source),
        "normalisation": f"mean {list(mean) if mean else None}, std {list(std) if std else None}",
    }
    empty = {name: _empty_top(targets[name]) for name in layers}
    done = UnitTopK(k, len(source), settings, empty)
    if state is not None and Path(state).exists():
        done = UnitTopK.load(state)
        if done.settings != settings or done.k != k or done.n_images != len(source):
            mine = UnitTopK(k, len(source), settings, empty)
            raise NetsightError(
                f"{state}: this dataset pass was started with other settings ({_differences(done, mine)}); "
                f"rerun it with the same ones, or give another state file"
            )
        if any(a < start or b > stop for a, b in done.covered):
            a, b = done.covered[0][0], done.covered[-1][1]
            raise NetsightError(
                f"{state}: this dataset pass holds images {a}-{b - 1}, outside the shard {start}-{stop - 1} asked for; "
                f"give each shard its own state file"
            )
    if check_only:  # the settings checked and the state read (or made empty), no image passed: what a split pass starts from
        return done
    todo = _missing(done.covered, start, stop)
    remaining = sum(b - a for a, b in todo)
    if not remaining:
        return done
    found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # target module -> this batch's unit maxima

    def hook(target: str):
        def record(module, inputs, output):
            found[target] = unit_maxima(output.detach())

        return record

    saved = time.monotonic()
    try:
        with (
            normalised_input(model, mean, std),
            evaluating(model),
            torch.no_grad(),
            forward_hooks(model, {t: hook(t) for t in set(targets.values())}),
            bar(stop - start, "dataset pass", progress, "img", initial=stop - start - remaining) as shown,
        ):
            for first, x in _prefetched(source, todo, batch_size):
                found.clear()
                model(x.to(device))
                done = _updated(done, found, first, len(x))
                shown.update(len(x))
                if state is not None and time.monotonic() - saved >= save_every:
                    done.save(state)
                    saved = time.monotonic()
    except KeyboardInterrupt:
        if state is None:
            raise
        done.save(state)  # what finished stays: the rerun continues from here
        raise _kept(done, len(source), state) from None
    if state is not None:
        done.save(state)
    return done


def _kept(done: UnitTopK, total: int, state) -> KeyboardInterrupt:
    """Ctrl-C's message when a state file keeps the pass so far: what it holds and how to continue."""
    return KeyboardInterrupt(
        f"interrupted; the dataset pass keeps {done.images_covered:,} of {total:,} images in {state}, "
        f"and the same command continues from there"
    )


def _empty_top(target: str) -> LayerTop:
    return LayerTop(target, torch.zeros(0, 0), torch.zeros(0, 0, dtype=torch.long), torch.zeros(0, 0, 2, dtype=torch.long))


def _updated(done: UnitTopK, found: dict[str, tuple[torch.Tensor, torch.Tensor]], first: int, n: int) -> UnitTopK:
    """A new state holding the batch of images [first, first + n) too (built whole, then swapped in, so
    Ctrl-C never leaves a state that is half updated)."""
    layers = {}
    for name, top in done.layers.items():
        values, positions = found[top.target]
        if not torch.isfinite(values).all():
            raise NetsightError(
                f"--layers {name}: its activations are not finite (NaN or infinity) for images {first}-{first + n - 1}; "
                f"the weights or the input normalisation are broken"
            )
        values, positions = values.T.float().cpu(), positions.transpose(0, 1).cpu()  # [maps, n]
        images = torch.arange(first, first + n).expand_as(values)
        if top.values.numel():
            values = torch.cat([top.values, values], 1)
            images = torch.cat([top.images, images], 1)
            positions = torch.cat([top.positions, positions], 1)
        layers[name] = LayerTop(top.target, *select_top(values, images, positions, done.k))
    return UnitTopK(done.k, done.n_images, done.settings, layers, _union(done.covered, [(first, first + n)]))


def _prefetched(source: ImageSource, ranges: Ranges, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(first index, float batch) over `ranges`, the next batch decoded in a thread while this one is used."""
    batches = [(s, min(s + batch_size, b)) for a, b in ranges for s in range(a, b, batch_size)]
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(source.load, range(*batches[0]))
        for i, (first, _) in enumerate(batches):
            x = ahead.result()
            if i + 1 < len(batches):
                ahead = pool.submit(source.load, range(*batches[i + 1]))
            yield first, x


def dataset_pass_on_ray(
    model: nn.Module,
    source: ImageSource,
    layers: Optional[Sequence[str]] = None,
    k: int = 9,
    batch_size: int = 64,
    state: Optional[str | Path] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    shards: Optional[int] = None,
    address: Optional[str] = None,
    cpus_per_task: float = 1,
    progress: bool = False,
) -> UnitTopK:
    """`dataset_pass` split into `shards` contiguous parts (default: one per CPU the cluster has, at most one per
    batch), each a Ray task, merged exactly as they finish (and saved to `state` after each, so a rerun sends only
    the shards it lacks). `address`: a running cluster's head (auto or HOST:PORT), else a local Ray instance."""
    from ..progress import bar
    from ..cluster import connect, import_ray

    ray = import_ray()
    started = connect(ray, address)
    pending: dict = {}
    done: Optional[UnitTopK] = None
    try:
        # the pass's settings checked (and a state file read) here, before any task: every shard's result must
        # carry the same settings to be merged
        done = dataset_pass(model, source, layers, k, batch_size, state, mean=mean, std=std, check_only=True)
        n = len(source)
        if shards is None:
            shards = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_task, 1e-9)))
        shards = max(1, min(shards, -(-n // batch_size)))
        size = -(-n // shards)
        todo = [part for a in range(0, n, size) for part in _missing(done.covered, a, min(a + size, n))]
        task = ray.remote(num_cpus=cpus_per_task)(_shard_task)
        model_ref, source_ref = ray.put(model), ray.put(source)
        pending = {
            task.remote(model_ref, source_ref, layers, k, batch_size, part, mean, std, cpus_per_task): part for part in todo
        }
        with bar(n, "dataset pass (Ray)", progress, "img", initial=done.images_covered) as shown:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                part = pending.pop(ready[0])
                result = ray.get(ready[0])
                if result.settings != done.settings:
                    raise NetsightError(
                        f"dataset pass: the shard {part[0]}-{part[1] - 1} ran with other settings ({_differences(done, result)})"
                    )
                done = done.merge(result)
                if state is not None:
                    done.save(state)
                shown.update(part[1] - part[0])
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        if state is None or done is None:
            raise
        raise _kept(done, len(source), state) from None
    finally:
        if started:
            ray.shutdown()
    return done


def _shard_task(model, source, layers, k, batch_size, shard, mean, std, threads) -> UnitTopK:
    """A Ray task: the dataset pass over one shard, on the threads Ray granted it."""
    torch.set_num_threads(max(1, int(threads)))
    return dataset_pass(model, source, layers, k, batch_size, shard=tuple(shard), mean=mean, std=std)
