"""Models from outside netsight: a torchvision classifier, a factory in an importable module,
or a class/factory in a Python file, with weights from a file that cannot run code.

SPEC forms (`netsight inspect --model SPEC`):
- `torchvision:NAME`: any torchvision classification model (`torchvision.models.get_model`,
  built without downloading anything); its preprocessing is that of its weights' own
  transforms (resize, centre crop, mean/std) and its class names are known.
- `package.module:factory`: imported; `factory` is a class or function called with no arguments.
- `path/to/file.py:ClassOrFactory`: the file is run as a module (it is your code: netsight
  imports it as Python would), then the name is called with no arguments.

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
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import NetsightError, warn


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


def load_external_model(spec: str, weights: Optional[str | Path] = None, input_size: Optional[int] = None,
                        mean: Optional[tuple[float, ...]] = None, std: Optional[tuple[float, ...]] = None) -> ExternalModel:
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
    categories = None
    state = read_state_dict(weights) if weights is not None else None
    if where == "torchvision":
        module, prep, categories = _torchvision_model(name, skip_init=state is not None)
    else:
        module = _call_factory(spec, _import(spec, where), name)
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
    if mean is not None:
        if len(mean) != channels or len(std) != channels:
            raise NetsightError(f"--mean/--std: {len(mean)}/{len(std)} values given, the model takes {channels} input channel(s)")
        prep = Preprocessing(prep.resize, prep.crop, tuple(mean), tuple(std))
    return ExternalModel(module, spec, prep, categories, channels, str(weights) if weights is not None else None)


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


def _import(spec: str, where: str):
    path = Path(where)
    if where.endswith(".py"):
        if not path.is_file():
            raise NetsightError(f"--model {spec}: no such file {path}")
        module_name = f"netsight_user_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise NetsightError(f"--model {spec}: {path} cannot be imported as Python")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise NetsightError(f"--model {spec}: importing {path} failed: {type(exc).__name__}: {exc}") from None
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise NetsightError(f"--model {spec}: cannot import {where} ({exc}); for a file write path/to/file.py:Name") from None
    except Exception as exc:
        raise NetsightError(f"--model {spec}: importing {where} failed: {type(exc).__name__}: {exc}") from None


def _call_factory(spec: str, module, name: str) -> nn.Module:
    if not hasattr(module, name):
        public = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(name, public, n=5, cutoff=0.5)
        raise NetsightError(f"--model {spec}: {module.__name__ if not hasattr(module, '__file__') else getattr(module, '__file__')} "
                            f"has no {name}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    factory = getattr(module, name)
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise NetsightError(f"--model {spec}: {name} is a {type(factory).__name__}, not a class or factory")
    try:
        built = factory()
    except TypeError as exc:
        raise NetsightError(f"--model {spec}: calling {name}() failed ({exc}); the factory must need no arguments") from None
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
            state = load(data)
        except Exception as exc:  # safetensors raises its own SafetensorError for damaged headers
            raise NetsightError(f"--weights {path}: not a readable safetensors file ({' '.join(str(exc).split())[:160]})") from None
    elif path.suffix in (".pt", ".pth", ".bin"):
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError for code, RuntimeError/EOFError for damage
            reason = " ".join(str(exc).split())[:200]
            raise NetsightError(f"--weights {path}: not a state dict torch.load(weights_only=True) can read "
                                f"(a file holding code or other objects is refused): {reason}") from None
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict) and not torch.is_tensor(state.get(key)):
                state = state[key]
                break
    else:
        raise NetsightError(f"--weights {path}: expected a .safetensors, .pt or .pth file")
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise NetsightError(f"--weights {path}: expected a state dict (parameter name -> tensor)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `model`, or name the first key that does not fit."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise NetsightError(f"--weights {source}: does not fit the model: key {key} (shape {tuple(tensor.shape)}) "
                                f"is missing from the file ({len(state)} keys in the file, {len(expected)} in the model)")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise NetsightError(f"--weights {source}: does not fit the model: key {key} has shape "
                                f"{tuple(state[key].shape)} in the file, {tuple(tensor.shape)} in the model")
    extra = [k for k in state if k not in expected]
    if extra:
        raise NetsightError(f"--weights {source}: does not fit the model: the file's key {extra[0]} is not in the model"
                            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
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
