"""Side-by-side comparison of finished runs: one table and overlaid curves (LeNet5 vs the
improved CNN at a glance). The train-test gap at the end is the overfitting measure the
report talks about: final train accuracy (interval mean) minus final test accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import NetsightError
from ..fileio import claim_output_folder, write_csv, write_text
from ..train.rundir import open_run
from ..plotting import save_figure
from .figures import plot_compare
from .tables import markdown_table

COLUMNS = [
    "run",
    "model",
    "data",
    "seed",
    "final_test_acc",
    "best_test_acc",
    "best_iteration",
    "final_train_acc",
    "train_test_gap",
    "parameters",
    "seconds",
    "status",
]


def compare_rows(paths: Sequence[str | Path]) -> list[dict]:
    rows = []
    for path in paths:
        run = open_run(path)
        metrics = run.metrics()
        if not metrics:
            raise NetsightError(f"{run.path}: no evaluation rows in metrics.csv yet")
        last = metrics[-1]
        best = max(metrics, key=lambda r: r["test_acc"])
        rows.append(
            {
                "run": run.name,
                "model": run.config.model,
                "data": run.config.data,
                "seed": run.config.seed,
                "final_test_acc": last["test_acc"],
                "best_test_acc": best["test_acc"],
                "best_iteration": int(best["iteration"]),
                "final_train_acc": last["train_acc_mean"],
                "train_test_gap": last["train_acc_mean"] - last["test_acc"],
                "parameters": run.summary.get("parameters", run.info.get("parameters")),
                "seconds": run.summary.get("seconds"),
                "status": run.summary.get("status"),
                "_metrics": metrics,
            }
        )
    return rows


def compare_runs(paths: Sequence[str | Path], out: str | Path = "netsight-compare") -> list[Path]:
    if len(paths) < 1:
        raise NetsightError("compare: give at least one run directory")
    rows = compare_rows(paths)
    out = claim_output_folder(out, "--out")
    names = [r["run"] for r in rows]
    if len(set(names)) != len(names):
        names = [str(Path(p)) for p in paths]
    table = [[name] + [r[c] for c in COLUMNS[1:]] for name, r in zip(names, rows, strict=True)]
    md = (
        "Final = last evaluation point; train accuracy is the mean over its interval; "
        "gap = final train - final test accuracy (overfitting).\n\n" + markdown_table(COLUMNS, table)
    )
    return [
        write_csv(out / "compare.csv", COLUMNS, [dict(zip(COLUMNS, t, strict=True)) for t in table]),
        write_text(out / "compare.md", md),
        save_figure(
            plot_compare([(n, r["_metrics"]) for n, r in zip(names, rows, strict=True)], models=[r["model"] for r in rows]),
            out / "compare.png",
        ),
    ]
