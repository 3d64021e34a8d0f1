"""Models from outside netsight: a torchvision classifier, a factory in an importable module,
or a class/factory in a Python file, with weights from a file that cannot run code.

SPEC forms (`netsight inspect --model SPEC`):
- `torchvision:NAME`: any torchvision classification model (`torchvision.models.get_model`,
  built without downloading anything); its preprocessing is that of its weights' own
  transforms (resize, centre crop, mean/std) and its class names are known.
- `package.module:factory`: imported; `factory` is a class or function called with no arguments.
- `path/to/file.py:ClassOrFactory`: the file is run as a module (it is your code: netsight
  imports it as Python would), then the name is called with no arguments.

The code of the last two forms is the user's: an exception it raises at import, in the factory or
constructor, or in the model's forward pass is a `UserCodeError` naming the user's file and line
(`UserCode`; the loaded module's forward is guarded, `guard_forward`), not a bug in netsight.
torchvision models are not user code.

Weights: `.safetensors`, or a `.pt`/`.pth` state dict read with `torch.load(weights_only=True)`
(a pickle that would build anything but tensors and plain containers is refused; nothing is
unpickled as code). A checkpoint dict holding the state dict under `state_dict` or `model` is
accepted, and the `module.` prefix of DataParallel is removed. The state dict must fit the
model exactly: the first missing, unexpected or differently shaped key is named.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import io
import os
import sys
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from torch import nn

from ..errors import NetsightError, UserCodeError, warn


@dataclass(frozen=True)
class Preprocessing:
    """How a file image becomes the model's input: resize the shorter side to `resize`, crop the
    centre `crop` x `crop` (None: keep the image's size), scale to [0, 1], then normalise with
    `mean`/`std` (applied inside the model's call, so every analysis sees [0, 1] pixels)."""

    resize: Optional[int] = None
    crop: Optional[int] = None
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None


@dataclass
class ExternalModel:
    module: nn.Module
    name: str  # the SPEC as given
    preprocessing: Preprocessing
    categories: Optional[tuple[str, ...]] = None  # class names of the outputs, when known
    input_channels: int = 3
    weights: Optional[str] = None  # the weights file, or None for the model's own initialisation
    notes: list[str] = field(default_factory=list)
    # where the model's code lives (file and module SPECs; None for torchvision): `module`'s forward is
    # guarded by it, and `user_code.running(...)` guards any other call into that code
    user_code: Optional["UserCode"] = None


def load_external_model(
    spec: str,
    weights: Optional[str | Path] = None,
    input_size: Optional[int] = None,
    mean: Optional[tuple[float, ...]] = None,
    std: Optional[tuple[float, ...]] = None,
) -> ExternalModel:
    """Build the model SPEC names, load `weights` into it, and work out its preprocessing.

    `input_size` overrides the crop side (a torchvision model keeps its resize/crop ratio);
    `mean`/`std` override the normalisation (both or neither)."""
    if (mean is None) != (std is None):
        raise NetsightError("--mean and --std go together: give both (one value per input channel) or neither")
    if std is not None and any(s <= 0 for s in std):
        raise NetsightError(f"--std {','.join(map(str, std))}: every value must be > 0")
    if ":" not in spec:
        raise NetsightError(f"--model {spec}: expected torchvision:NAME, package.module:factory or path/to/file.py:Name")
    where, name = spec.rsplit(":", 1) if not spec.startswith("torchvision:") else spec.split(":", 1)
    if not name:
        raise NetsightError(f"--model {spec}: nothing after ':' (expected the model, class or factory name)")
    categories, code = None, None
    state = read_state_dict(weights) if weights is not None else None
    if where == "torchvision":
        module, prep, categories = _torchvision_model(name, skip_init=state is not None)
    else:
        user_module, code = _import(spec, where)
        module = guard_forward(_call_factory(spec, user_module, name, code), code)
        prep = Preprocessing()
    module.eval()
    if state is not None:
        load_state_dict_strict(module, state, str(weights))
    else:
        warn(f"--model {spec}: no --weights given, the model keeps its own (random) initialisation")
    channels = first_conv_channels(module)
    if input_size is not None:
        if prep.crop and prep.resize:
            prep = Preprocessing(round(input_size * prep.resize / prep.crop), input_size, prep.mean, prep.std)
        else:
            prep = Preprocessing(input_size, input_size, prep.mean, prep.std)
    if mean is not None and std is not None:
        if len(mean) != channels or len(std) != channels:
            raise NetsightError(f"--mean/--std: {len(mean)}/{len(std)} values given, the model takes {channels} input channel(s)")
        prep = Preprocessing(prep.resize, prep.crop, tuple(mean), tuple(std))
    return ExternalModel(module, spec, prep, categories, channels, str(weights) if weights is not None else None, user_code=code)


def _torchvision_model(name: str, skip_init: bool = False):
    """The model, its preprocessing and class names. With `skip_init` (weights follow) it is built
    on the meta device: no time spent drawing random weights (VGG-11: 2 s) that are replaced anyway."""
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
        raise NetsightError(f"--model torchvision:{name}: torchvision has no classification model of that name; {hint}")
    if skip_init:
        with torch.device("meta"):
            module = torchvision.models.get_model(name, weights=None)
    else:
        module = torchvision.models.get_model(name, weights=None)
    try:
        enum = torchvision.models.get_model_weights(name)
        default = enum.DEFAULT
        t = default.transforms()  # a description of the transforms: builds nothing, downloads nothing
        prep = Preprocessing(int(t.resize_size[0]), int(t.crop_size[0]), tuple(t.mean), tuple(t.std))
        categories = tuple(default.meta.get("categories") or ()) or None
    except (ValueError, AttributeError, KeyError, TypeError, IndexError):  # a model without published weights
        prep, categories = Preprocessing(), None
    return module, prep, categories


def _import(spec: str, where: str) -> tuple[types.ModuleType, UserCode]:
    """The user's module, and where its code lives (an exception it raises at import is theirs)."""
    path = Path(where)
    if where.endswith(".py"):
        if not path.is_file():
            raise NetsightError(f"--model {spec}: no such file {path}")
        code = UserCode(spec, (os.path.realpath(path),))
        module_name = f"netsight_user_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise NetsightError(f"--model {spec}: {path} cannot be imported as Python")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
        try:
            with code.running(f"importing {path} failed:", exits=True):
                loader_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module, code
    top = where.split(".")[0]
    try:
        found = importlib.util.find_spec(top) if top else None  # finds, runs nothing
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise NetsightError(
            f"--model {spec}: cannot import {where} (No module named {top!r}); for a file write path/to/file.py:Name"
        )
    folders = list(found.submodule_search_locations or [])
    code = UserCode(spec, tuple(os.path.realpath(p) for p in folders or ([found.origin] if found.origin else [])))
    try:
        with code.running(f"importing {where} failed:", exits=True):
            return importlib.import_module(where), code
    except UserCodeError as exc:
        missing = exc.original
        if isinstance(missing, ModuleNotFoundError) and missing.name and (where + ".").startswith(missing.name + "."):
            raise NetsightError(
                f"--model {spec}: cannot import {where} ({missing}); for a file write path/to/file.py:Name"
            ) from None  # the SPEC's own module is not there
        raise


def _call_factory(spec: str, module, name: str, code: UserCode) -> nn.Module:
    if not hasattr(module, name):
        public = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(name, public, n=5, cutoff=0.5)
        raise NetsightError(
            f"--model {spec}: {module.__name__ if not hasattr(module, '__file__') else module.__file__} "
            f"has no {name}" + (f"; did you mean {', '.join(close)}?" if close else "")
        )
    factory = getattr(module, name)
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise NetsightError(f"--model {spec}: {name} is a {type(factory).__name__}, not a class or factory")
    try:
        with code.running(f"calling {name}() raised", exits=True):
            built = factory()
    except UserCodeError as exc:
        if isinstance(exc.original, TypeError) and not code._frames(exc.original, strip=True):
            raise NetsightError(
                f"--model {spec}: calling {name}() failed ({exc.original}); the factory must need no arguments"
            ) from None  # the call itself did not fit: no frame of the factory ran
        raise
    if not isinstance(built, nn.Module):
        raise NetsightError(f"--model {spec}: {name}() returned a {type(built).__name__}, not a torch.nn.Module")
    return built


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a .pt/.pth file, never unpickling code."""
    from ..fileio import read_bytes

    path = Path(path)
    data = read_bytes(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load

        try:
            state: Any = load(data)
        except Exception as exc:  # safetensors raises its own SafetensorError for damaged headers
            raise NetsightError(
                f"--weights {path}: not a readable safetensors file ({' '.join(str(exc).split())[:160]})"
            ) from None
    elif path.suffix in (".pt", ".pth", ".bin"):
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError for code, RuntimeError/EOFError for damage
            reason = " ".join(str(exc).split())[:200]
            raise NetsightError(
                f"--weights {path}: not a state dict torch.load(weights_only=True) can read "
                f"(a file holding code or other objects is refused): {reason}"
            ) from None
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict) and not torch.is_tensor(state.get(key)):
                state = state[key]
                break
    else:
        raise NetsightError(f"--weights {path}: expected a .safetensors, .pt or .pth file")
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise NetsightError(f"--weights {path}: expected a state dict (parameter name -> tensor)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `model`, or name the first key that does not fit."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise NetsightError(
                f"--weights {source}: does not fit the model: key {key} (shape {tuple(tensor.shape)}) "
                f"is missing from the file ({len(state)} keys in the file, {len(expected)} in the model)"
            )
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise NetsightError(
                f"--weights {source}: does not fit the model: key {key} has shape "
                f"{tuple(state[key].shape)} in the file, {tuple(tensor.shape)} in the model"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise NetsightError(
            f"--weights {source}: does not fit the model: the file's key {extra[0]} is not in the model"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    meta = any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))
    model.load_state_dict(state, strict=True, assign=meta)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:  # a buffer outside the state dict (non-persistent) cannot be built from the file
        raise NetsightError(f"--weights {source}: the model's {left[0]} is not in the state dict and has no value")


def first_conv_channels(model: nn.Module) -> int:
    """The number of input channels the model takes (its first convolution's)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise NetsightError(f"model {type(model).__name__} has no Conv2d layer; these tools need a CNN")


# ------------------------------------------------------------------ the user's code: its errors are theirs

_NETSIGHT_DIR = str(Path(__file__).resolve().parents[1])
_NETSIGHT_LAYERS = str(Path(__file__).resolve().parent)  # netsight's own models: layers, like torch's
_DISPATCH = {"__torch_function__", "__torch_dispatch__"}  # a torch function mode passing the user's call on


def _inside(filename: str, folder: str) -> bool:
    return filename == folder or filename.startswith(folder + os.sep)


@dataclass(frozen=True)
class UserCode:
    """Where the code of a `--model` SPEC lives: its file (`file.py:Name`) or its package/module
    (`package.module:factory`), and how an exception raised there is reported.

    An exception from a call into that code (`running`, and every forward pass of a guarded model:
    `guard_forward`) becomes a `UserCodeError` naming the innermost frame in the user's file, unless
    it is netsight's: a `NetsightError`, or one whose innermost deciding frame (walking the traceback
    from where it was raised outwards, past torch's and other libraries' frames) lies in netsight's
    own code, e.g. one of its hooks. Torch called by the user's code with a wrong shape is the user's;
    so is a failure in a model whose layers are all torch's (an `nn.Sequential` built by the factory)."""

    spec: str
    paths: tuple[str, ...]  # resolved files or package folders

    def owns(self, filename: str) -> bool:
        """True for a frame of the user's code (netsight's own files never are, whatever the SPEC)."""
        if filename.startswith("<"):
            return False
        try:
            real = os.path.realpath(filename)
        except (OSError, ValueError):
            return False
        return not _inside(real, _NETSIGHT_DIR) and any(_inside(real, p) for p in self.paths)

    def _kind(self, frame: traceback.FrameSummary) -> Optional[str]:
        """'user', 'netsight', or None (torch, another library, the standard library)."""
        if self.owns(frame.filename):
            return "user"
        real = os.path.realpath(frame.filename) if not frame.filename.startswith("<") else frame.filename
        if (
            _inside(real, _NETSIGHT_DIR)
            and frame.name not in _DISPATCH
            and (not _inside(real, _NETSIGHT_LAYERS) or real == os.path.realpath(__file__))
        ):
            return "netsight"
        return None

    def _frames(self, exc: BaseException, strip: bool) -> list[traceback.FrameSummary]:
        frames = list(traceback.extract_tb(exc.__traceback__))
        while strip and frames and _inside(os.path.realpath(frames[0].filename), _NETSIGHT_DIR):
            frames.pop(0)  # the guard and the netsight code that called into the user's
        return frames

    def blame(self, exc: BaseException, doing: str, detail: str = "") -> Optional[UserCodeError]:
        """The `UserCodeError` for `exc`, or None when it is netsight's and must pass unchanged.
        `doing` is what went wrong, the words before the exception's name ("the model's forward
        pass raised", "importing net.py failed:"); `detail` follows the exception's message."""
        if isinstance(exc, NetsightError):
            return None
        chain: list[BaseException] = []
        seen: set[int] = set()
        todo: list[Optional[BaseException]] = [exc]
        while todo:
            e = todo.pop()
            if e is None or id(e) in seen:
                continue
            seen.add(id(e))
            chain.append(e)
            todo += [e.__cause__, e.__context__]
        for i, e in enumerate(chain):
            if isinstance(e, NetsightError):
                return None
            kinds = [k for k in map(self._kind, reversed(self._frames(e, strip=i == 0))) if k]
            if kinds and kinds[0] == "netsight":
                return None
        frames = [f for f in self._frames(exc, strip=True) if not f.filename.startswith("<")]  # not <frozen importlib...>
        mine = [f for f in frames if self.owns(f.filename)]
        where: Optional[tuple[str, Optional[int], Optional[str], str]] = None
        if isinstance(exc, SyntaxError) and exc.filename:
            where = (exc.filename, exc.lineno, None, (exc.text or "").strip())
        elif mine or frames:
            f = (mine or frames)[-1]
            where = (f.filename, f.lineno, f.name, (f.line or "").strip())
        text = " ".join(str(exc.msg if isinstance(exc, SyntaxError) and exc.msg else exc).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        message = f"--model {self.spec}: {doing} {type(exc).__name__}" + (f": {text}" if text else "") + detail
        if where is not None:
            filename, lineno, name, line = where
            own = bool(mine) or isinstance(exc, SyntaxError)
            message += (
                f" (at {filename}:{lineno}"
                + (f", in {name}" if name else "")
                + (f": {line}" if line else "")
                + ("" if own else "; no line of the model's own code is in the traceback")
                + ")"
            )
        message += "; the error is in the model's code, not in netsight"
        return UserCodeError(message, exc, where[0] if where else None, where[1] if where else None)

    @contextmanager
    def running(self, doing: str, detail: str = "", exits: bool = False) -> Iterator[None]:
        """A block that calls into the user's code: what it raises there becomes a `UserCodeError`
        (`exits`: a `SystemExit`, e.g. argparse at import, too)."""
        try:
            yield
        except (Exception, SystemExit) as exc:
            if isinstance(exc, SystemExit) and not exits:
                raise
            blamed = self.blame(exc, doing, detail)
            if blamed is None:
                raise
            raise blamed from exc


def _describe_inputs(args: tuple, kwargs: dict) -> str:
    shapes = [f"[{', '.join(map(str, a.shape))}]" for a in list(args) + list(kwargs.values()) if torch.is_tensor(a)]
    return f" on input {', '.join(shapes)}" if shapes else ""


def _guarded_forward(self: nn.Module, *args, **kwargs):
    code: UserCode = self.__dict__["_netsight_user_code"]
    inner = self.__dict__.get("_netsight_inner_forward")
    try:
        return inner(*args, **kwargs) if inner is not None else type(self).forward(self, *args, **kwargs)
    except Exception as exc:
        blamed = code.blame(exc, "the model's forward pass raised", _describe_inputs(args, kwargs))
        if blamed is None:
            raise
        raise blamed from exc


def guard_forward(module: nn.Module, code: UserCode) -> nn.Module:
    """Route every forward pass of `module` (the user's top module) through `code`'s guard: its
    `forward` becomes an instance attribute (a bound method, so copies of the module stay guarded
    on themselves). Hooks, eval mode and the state dict are untouched; netsight's forward and
    pre-hooks on the top module run outside the guard, hooks on submodules inside it (an exception
    raised by one of them is netsight's and passes unchanged)."""
    if is_guarded(module):
        return module
    if "forward" in module.__dict__:  # the user's own instance-level forward
        module.__dict__["_netsight_inner_forward"] = module.__dict__["forward"]
    module.__dict__["_netsight_user_code"] = code
    module.__dict__["forward"] = types.MethodType(_guarded_forward, module)
    return module


def is_guarded(module: nn.Module) -> bool:
    """True when `module`'s forward passes go through a `UserCode` guard (`guard_forward`)."""
    return "_netsight_user_code" in module.__dict__
