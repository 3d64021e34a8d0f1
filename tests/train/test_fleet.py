"""The fleet trainer: each member is the single run of its config, to float rounding."""

from __future__ import annotations

import pytest
import torch

from netsight.fileio import read_json
from netsight.models.fleet_modules import FleetSequential
from netsight.train import fleet as fleet_module
from netsight.train import open_run, resolve, train
from netsight.train.fleet import train_fleet
from tests.conftest import tiny_dataset
from tests.train.test_loop import _interrupt_after


def _configs(model, seeds=(1, 2, 3), **kw):
    base = dict(iterations=50, eval_every=1, batch_size=16)
    return [resolve(model, "mnist", seed=s, **{**base, **kw}) for s in seeds]


def _losses(path):
    return [(r["train_loss"], r["test_loss"], r["test_acc"], r["train_eval_loss"]) for r in open_run(path).metrics()]


# Tolerances. The maths is exact: in float64 a fleet and its single runs agree to 1e-11 over 50 Adam
# steps (tests/models/test_fleet_modules.py). In float32 a grouped convolution or a batched product adds in
# another order, so the first loss agrees to ~2e-7, and the gap then grows: Adam divides each update
# by the gradient's own running scale (its very first step is lr * sign(gradient)), so parameters
# whose true gradient is ~0 (conv biases that batch norm cancels, units that barely fire) take
# full-size steps driven by rounding noise, and these differ between the two. Measured over 50 iterations, 3 seeds (max |loss difference|):
# cells 4.8e-7; LeNet5 6.4e-4; cnn-bn (dropout off) 8.3e-3. The bounds below sit above those; the test compares the
# first 25 iterations (the gap only grows after them), each with its evaluation.
@pytest.mark.parametrize(
    "model, kw, tol",
    [
        pytest.param("lenet5", {}, 2e-3, marks=pytest.mark.slow),  # the CNN cases train ~5-8 s each on 2 cores
        ("rnn", {"hidden": 16}, 1e-5),
        ("lstm", {"hidden": 16}, 1e-5),
        ("gru", {"hidden": 16}, 1e-5),
        pytest.param("cnn-bn", {"dropout": 0.0}, 2e-2, marks=pytest.mark.slow),
    ],
)
def test_the_first_25_iterations_equal_the_single_runs(tmp_path, model, kw, tol):
    data = tiny_dataset(n_train=64, n_test=20)  # an evaluation every iteration: 84 images each (the subset is all 64)
    configs = _configs(model, iterations=25, **kw)
    summaries = train_fleet(configs, [tmp_path / f"f{c.seed}" for c in configs], dataset=data, progress=False, device="cpu")
    assert [s["status"] for s in summaries] == ["completed"] * 3
    for c in configs:
        train(c, tmp_path / f"s{c.seed}", dataset=data, progress=False, device="cpu")
        fleet_rows, single_rows = _losses(tmp_path / f"f{c.seed}"), _losses(tmp_path / f"s{c.seed}")
        assert len(fleet_rows) == len(single_rows) == 25
        for it, (a, b) in enumerate(zip(fleet_rows, single_rows, strict=True), 1):
            bound = 1e-5 if it == 1 else tol  # the first loss (before any update): float32 rounding only
            assert a[0] == pytest.approx(b[0], abs=bound) and a[1] == pytest.approx(b[1], abs=bound), (it, a, b)
            assert a[3] == pytest.approx(b[3], abs=bound), (it, a, b)  # eval mode on the same training subset
    # a member's run directory is an ordinary one: its weights load into the ordinary model
    run = open_run(tmp_path / "f2")
    assert run.summary["fleet"] == {"members": 3, "index": 1} and run.config == configs[1]
    model_ = run.model()
    from netsight.train.loop import evaluate

    _, acc = evaluate(model_, data.test_images, data.test_labels)
    assert acc.item() == pytest.approx(run.metrics()[-1]["test_acc"], abs=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_members_with_their_own_learning_rates(tmp_path, optimizer):
    """lr may differ within a fleet: the step runs with lr 1 and each member's update is scaled by its lr."""
    data = tiny_dataset()
    configs = [
        resolve("gru", "mnist", seed=s, lr=lr, hidden=8, iterations=30, eval_every=1, batch_size=16, optimizer=optimizer)
        for s, lr in ((1, 1e-3), (2, 5e-3), (3, 2e-2))
    ]
    train_fleet(configs, [tmp_path / f"f{c.seed}" for c in configs], dataset=data, progress=False)
    for c in configs:
        train(c, tmp_path / f"s{c.seed}", dataset=data, progress=False)
        for a, b in zip(_losses(tmp_path / f"f{c.seed}"), _losses(tmp_path / f"s{c.seed}"), strict=True):
            assert a[0] == pytest.approx(b[0], abs=1e-5) and a[1] == pytest.approx(b[1], abs=1e-5)
    assert read_json(tmp_path / "f3" / "config.json")["train"]["lr"] == 2e-2


def test_resuming_an_interrupted_fleet_equals_an_uninterrupted_fleet(tmp_path, monkeypatch):
    data = tiny_dataset()
    configs = _configs("cnn-bn", iterations=24, eval_every=5)  # dropout on: the fleet's RNG must resume too
    outs_full = [tmp_path / f"full{c.seed}" for c in configs]
    train_fleet(configs, outs_full, dataset=data, progress=False)
    _interrupt_after(monkeypatch, 3 * 13 + 1)  # each iteration draws 3 batches: Ctrl-C during iteration 14
    outs = [tmp_path / f"split{c.seed}" for c in configs]
    stopped = train_fleet(configs, outs, dataset=data, progress=False)
    monkeypatch.undo()
    assert [s["status"] for s in stopped] == ["interrupted"] * 3 and all((o / "checkpoint.pt").is_file() for o in outs)
    resumed = train_fleet(configs, outs, dataset=data, progress=False, resume=True)
    assert [s["status"] for s in resumed] == ["completed"] * 3
    strip = lambda p: [{k: v for k, v in r.items() if k != "seconds"} for r in open_run(p).metrics()]  # noqa: E731
    for a, b in zip(outs_full, outs, strict=True):
        assert strip(a) == strip(b)
        assert not (b / "checkpoint.pt").exists()


def test_a_diverged_member_stops_and_the_others_go_on(tmp_path, monkeypatch):
    """Member 1's weights turn to NaN after iteration 7; members 0 and 2 must finish, unaffected."""
    data = tiny_dataset()
    configs = _configs("lenet5", iterations=20, eval_every=5)
    real_stack, calls = fleet_module.stack_models, {"n": 0}

    def poisoned_stack(models):
        fleet = real_stack(models)

        def poison(module, inputs):
            if not module.training:  # the evaluations' passes (test set, eval-mode train subset) do not count
                return
            calls["n"] += 1
            if calls["n"] == 8:
                with torch.no_grad():
                    module.fc2.weight.view(3, 10, -1)[1].fill_(float("nan"))

        fleet.register_forward_pre_hook(poison)
        return fleet

    monkeypatch.setattr(fleet_module, "stack_models", poisoned_stack)
    summaries = train_fleet(configs, [tmp_path / f"p{c.seed}" for c in configs], dataset=data, progress=False)
    monkeypatch.undo()
    assert [s["status"] for s in summaries] == ["completed", "diverged", "completed"]
    assert summaries[1]["iterations_done"] == 10 and "try a smaller --lr" in summaries[1]["message"]
    clean = train_fleet([configs[0], configs[2]], [tmp_path / "c1", tmp_path / "c3"], dataset=data, progress=False)
    assert [s["status"] for s in clean] == ["completed"] * 2
    for poisoned, ref in ((tmp_path / "p1", tmp_path / "c1"), (tmp_path / "p3", tmp_path / "c3")):
        flat = lambda rows: [v for row in rows for v in row]  # noqa: E731
        assert flat(_losses(poisoned)) == pytest.approx(flat(_losses(ref)), abs=2e-3)  # a fleet of 3 vs 2: rounding only


def test_fleet_refuses_mismatched_members(tmp_path):
    from netsight.errors import NetsightError

    with pytest.raises(NetsightError, match="members must share"):
        train_fleet([resolve("gru", hidden=8), resolve("gru", hidden=16)], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(NetsightError, match="members must share"):
        train_fleet([resolve("gru", optimizer="sgd"), resolve("gru")], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(NetsightError, match="share an output folder"):
        train_fleet(_configs("gru", seeds=(1, 2), hidden=8), [tmp_path / "a", tmp_path / "a"])


def test_suite_with_fleet_on_writes_ordinary_runs(tmp_path, capsys, small_suite_data):
    from netsight.cli import main

    suite = tmp_path / "s.toml"
    suite.write_text(
        'seeds = 2\n[[group]]\nname = "g"\nmodels = ["gru", "lenet5"]\ndata = "mnist"\nhidden = [8, 16]\n'
        "iterations = 6\neval_every = 3\n"
    )
    with small_suite_data("mnist"):  # in this process (--jobs 1; parallel fleets: below), on 1,000 / 100 digits
        assert main(["run", str(suite), "--fleet", "on", "--jobs", "1", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "training as 3 fleets" in err
    runs = sorted((tmp_path / "out" / "runs" / "g").iterdir())
    assert len(runs) == 6
    for r in runs:
        summary = read_json(r / "summary.json")
        assert summary["status"] == "completed" and summary["fleet"]["members"] == 2
    assert (tmp_path / "out" / "report.html").is_file()
    # rerunning skips them all
    with small_suite_data("mnist"):
        assert main(["run", str(suite), "--fleet", "on", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "6 already done, 0 to train" in capsys.readouterr().err


def test_fleet_auto_is_off_on_the_cpu():
    from netsight.suites.runner import SuiteOptions, use_fleets

    assert use_fleets(SuiteOptions(device="cpu", fleet="auto")) is False
    assert use_fleets(SuiteOptions(device="cpu", fleet="on")) is True
    assert FleetSequential  # the CNN fleet module is importable without CUDA


@pytest.mark.slow  # two worker processes, each importing torch and loading MNIST
def test_fleets_in_parallel_processes_match_one_process(tmp_path):
    """--jobs 2 with fleets: each fleet is one task of the process pool; results equal --jobs 1 (CPU)."""
    from netsight.suites.runner import SuiteOptions, run_suite
    from netsight.suites.spec import parse_suite

    suite = parse_suite(
        'seeds = 2\n[[group]]\nname = "g"\nmodels = ["rnn"]\ndata = "mnist"\nhidden = [8, 16]\niterations = 6\neval_every = 3\n',
        "t.toml",
    )
    run_suite(suite, tmp_path / "one", SuiteOptions(progress=False, fleet="on"), report=False)
    run_suite(suite, tmp_path / "two", SuiteOptions(progress=False, fleet="on", jobs=2), report=False)
    strip = lambda p: [{k: v for k, v in r.items() if k != "seconds"} for r in open_run(p).metrics()]  # noqa: E731
    runs = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one" / "runs" / "g").iterdir())
    assert len(runs) == 4
    for rel in runs:
        assert strip(tmp_path / "one" / rel) == strip(tmp_path / "two" / rel)
        assert read_json(tmp_path / "two" / rel / "summary.json")["fleet"]["members"] == 2
