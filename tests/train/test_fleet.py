"""The fleet trainer: each member is the single run of its config, to float rounding."""

from __future__ import annotations

from dataclasses import replace

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


def _losses(path, at=None):
    """Each evaluation's losses and test accuracy (at the iterations `at` only, if given)."""
    rows = [r for r in open_run(path).metrics() if at is None or r["iteration"] in at]
    return [(r["train_loss"], r["test_loss"], r["test_acc"], r["train_eval_loss"]) for r in rows]


def _first_25_data():
    return tiny_dataset(n_train=64, n_test=20)  # an evaluation every iteration: 84 images each (the subset is all 64)


@pytest.fixture(scope="module")
def first_25_fleets(tmp_path_factory):
    """`fleet(model, **kw)`: the fleet of test_the_first_25_iterations_equal_the_single_runs (seeds 1-3, 25 iterations, an
    evaluation every iteration) as (configs, output folders, summaries), trained once for the module: the divergence
    test below reads LeNet5's as the same fleet with no member poisoned (its 25 steps cost ~13 s of CPU here)."""
    root = tmp_path_factory.mktemp("fleets")
    fleets = {}

    def fleet(model, **kw):
        key = (model, tuple(sorted(kw.items())))
        if key not in fleets:
            configs = _configs(model, iterations=25, **kw)
            outs = [root / f"{model}-f{c.seed}" for c in configs]
            summaries = train_fleet(configs, outs, dataset=_first_25_data(), progress=False, device="cpu")
            fleets[key] = configs, outs, summaries
        return fleets[key]

    return fleet


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
def test_the_first_25_iterations_equal_the_single_runs(tmp_path, first_25_fleets, model, kw, tol):
    data = _first_25_data()
    configs, outs, summaries = first_25_fleets(model, **kw)
    assert [s["status"] for s in summaries] == ["completed"] * 3
    for c, out in zip(configs, outs, strict=True):
        train(c, tmp_path / f"s{c.seed}", dataset=data, progress=False, device="cpu")
        fleet_rows, single_rows = _losses(out), _losses(tmp_path / f"s{c.seed}")
        assert len(fleet_rows) == len(single_rows) == 25
        for it, (a, b) in enumerate(zip(fleet_rows, single_rows, strict=True), 1):
            bound = 1e-5 if it == 1 else tol  # the first loss (before any update): float32 rounding only
            assert a[0] == pytest.approx(b[0], abs=bound) and a[1] == pytest.approx(b[1], abs=bound), (it, a, b)
            assert a[3] == pytest.approx(b[3], abs=bound), (it, a, b)  # eval mode on the same training subset
    # a member's run directory is an ordinary one: its weights load into the ordinary model
    run = open_run(outs[1])
    assert run.summary["fleet"] == {"members": 3, "index": 1} and run.config == configs[1]
    model_ = run.model()
    from netsight.train.loop import evaluate

    _, acc = evaluate(model_, data.test_images, data.test_labels)
    assert acc.item() == pytest.approx(run.metrics()[-1]["test_acc"], abs=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_members_with_their_own_learning_rates(tmp_path, optimizer):
    """lr may differ within a fleet: the step runs with lr 1 and each member's update is scaled by its lr."""
    data = tiny_dataset(n_train=64, n_test=20)  # an evaluation every iteration: a small test set and training subset
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
    data = tiny_dataset(n_train=64, n_test=20)  # 4 batches an epoch: the samplers resume mid-epoch
    configs = _configs("cnn-bn", iterations=12, eval_every=5)  # dropout on: the fleet's RNG must resume too
    outs_full = [tmp_path / f"full{c.seed}" for c in configs]
    train_fleet(configs, outs_full, dataset=data, progress=False)
    # each iteration draws 3 batches: Ctrl-C during iteration 7, between the evaluations at 5 and 10 (then 12)
    _interrupt_after(monkeypatch, 3 * 6 + 1)
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


def test_a_diverged_member_stops_and_the_others_go_on(tmp_path, monkeypatch, first_25_fleets):
    """Member 1's weights turn to NaN after iteration 7; members 0 and 2 must finish, unaffected: as in the same fleet
    with no member poisoned (the first-25 test's, evaluated every iteration; its rows at 5, 10 and 15 are compared)."""
    _, clean, _ = first_25_fleets("lenet5")  # trained before the poison is put in place
    data = _first_25_data()
    configs = _configs("lenet5", iterations=15, eval_every=5)
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
    summaries = train_fleet(configs, [tmp_path / f"p{c.seed}" for c in configs], dataset=data, progress=False, device="cpu")
    monkeypatch.undo()
    assert [s["status"] for s in summaries] == ["completed", "diverged", "completed"]
    assert summaries[1]["iterations_done"] == 10 and "try a smaller --lr" in summaries[1]["message"]
    for poisoned, ref in ((tmp_path / "p1", clean[0]), (tmp_path / "p3", clean[2])):
        flat = lambda rows: [v for row in rows for v in row]  # noqa: E731
        # the clean fleet's arithmetic exactly (measured: equal to the bit); the bound is the one this test had against a
        # clean fleet of 2 (rounding only)
        assert flat(_losses(poisoned)) == pytest.approx(flat(_losses(ref, at={5, 10, 15})), abs=2e-3)


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


@pytest.mark.slow  # two worker processes, each importing torch
def test_fleets_in_parallel_processes_match_one_process(tmp_path):
    """--jobs 2 with fleets: each fleet is one task of the process pool; results equal --jobs 1 (CPU)."""
    from netsight.suites.runner import SuiteOptions, run_suite
    from netsight.suites.spec import parse_suite
    from tests.conftest import write_idx_folder

    suite = parse_suite(
        'seeds = 2\n[[group]]\nname = "g"\nmodels = ["rnn"]\ndata = "mnist"\nhidden = [8, 16]\niterations = 6\neval_every = 3\n',
        "t.toml",
    )
    # MNIST files of 200 + 50 random digits (--data-root), not the bundled 70,000, which each of the three processes read
    # and evaluated on (2 s of this test's 19 s of CPU; the equality does not depend on the data); 200 >= the rnn's batch of 128
    write_idx_folder(tmp_path / "mnist", n_train=200, n_test=50)
    options = SuiteOptions(progress=False, fleet="on", data_root=str(tmp_path / "mnist"))
    run_suite(suite, tmp_path / "one", options, report=False)
    run_suite(suite, tmp_path / "two", replace(options, jobs=2), report=False)
    strip = lambda p: [{k: v for k, v in r.items() if k != "seconds"} for r in open_run(p).metrics()]  # noqa: E731
    runs = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one" / "runs" / "g").iterdir())
    assert len(runs) == 4
    for rel in runs:
        assert strip(tmp_path / "one" / rel) == strip(tmp_path / "two" / rel)
        assert read_json(tmp_path / "two" / rel / "summary.json")["fleet"]["members"] == 2
