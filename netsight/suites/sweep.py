"""`netsight sweep`: the recurrent grid (cells x hidden sizes x seeds) plus the CNNs on the
same data and iteration budget — built as a suite, so there is one runner. `--models` takes
any registered model; the hidden-size grid multiplies only the models that have one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import NetsightError
from ..models import MODELS
from .runner import SuiteOptions, run_suite
from .spec import parse_suite


def sweep_suite_text(
    models: Sequence[str], hidden: Sequence[int], cnns: Sequence[str], data: str, seeds: int, overrides: dict[str, Any]
) -> str:
    if not models or any(not m for m in models):
        raise NetsightError(f"--models {','.join(models)!r}: expected comma-separated model names (netsight models)")
    for m in models:
        if m not in MODELS:
            raise NetsightError(f"--models {m}: unknown model; expected any of {', '.join(MODELS)}")
    for m in cnns:
        if m not in MODELS or MODELS[m].family != "cnn":
            raise NetsightError(f"--cnn {m}: expected CNN models (lenet5, cnn-bn)")
    if not hidden or any(h < 1 for h in hidden):
        raise NetsightError(f"--hidden {list(hidden)}: expected positive integers")
    train = {k: v for k, v in overrides.items() if v is not None}
    lines = [
        f"title = {json.dumps(f'sweep on {data}')}",
        f"seeds = {seeds}",
        "",
        "[[group]]",
        'name = "rnn"',
        f"models = {json.dumps(list(models))}",
        f"data = {json.dumps(data)}",
        f"hidden = {json.dumps(list(hidden))}",
        'analyses = ["sequence"]',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in train.items()]
    if cnns:
        lines += ["", "[[group]]", 'name = "cnn"', f"models = {json.dumps(list(cnns))}", f"data = {json.dumps(data)}"]
        if "iterations" in train:  # the same budget as the recurrent nets
            lines.append(f"iterations = {train['iterations']}")
    return "\n".join(lines) + "\n"


def run_sweep(
    out: str | Path,
    models: Sequence[str],
    hidden: Sequence[int],
    cnns: Sequence[str],
    data: str,
    seeds: int,
    options: SuiteOptions,
    overrides: Optional[dict[str, Any]] = None,
) -> list[Path]:
    from ..report.study import write_comparison

    text = sweep_suite_text(models, hidden, cnns, data, seeds, overrides or {})
    run_suite(parse_suite(text, str(Path(out) / "suite.toml")), out, options, report=False)
    return write_comparison(out, f"{', '.join(models)} on {data}")
