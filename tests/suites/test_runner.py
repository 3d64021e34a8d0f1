"""A small real suite end to end: runs keyed by config, skipped when done, resumed when
interrupted, analyses, the sweep's comparison and the report."""

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from netsight.fileio import read_csv, read_json
from netsight.report.html import build_report
from netsight.suites import work_units
from netsight.suites.backends import local
from netsight.suites.runner import SuiteOptions, run_suite
from netsight.suites.spec import expand, parse_suite
from netsight.suites.sweep import run_sweep
from netsight.train import open_run, train
from netsight.train.loop import BatchSampler
from tests.conftest import small_part, write_idx_folder

SUITE = """
title = "tiny <study> & co"
seeds = 2

[[group]]
name = "cnn"
models = ["lenet5"]
data = "cifar10-assignment"
iterations = 12
eval_every = 4
snapshots = [4, 8]
analyses = ["filters", "activations", "deconv", "top9", "occlusion", "evolution", "invariance", "explore", "microscope"]

[[group]]
name = "rnn"
models = ["gru"]
data = "mnist"
hidden = [8]
iterations = 12
eval_every = 4
analyses = ["sequence", "explore"]
"""


SUITE_DATA = (300, 50)  # train / test images of each bundled set that SUITE reads here (every class, evenly spread)


@contextmanager
def suite_data(small_suite_data, *names):
    """While inside, an in-process suite reads SUITE_DATA's part of the bundled sets (`names`, or all); yields them
    by name. The tests that use it check the runs' and analyses' files, tables and links, not what the runs reach,
    and the evaluations and the analyses that pass over every test image (activations, top 9, explore, the
    microscope) cost in proportion to the images."""
    with small_suite_data(*names) as data, pytest.MonkeyPatch.context() as mp:
        parts = {name: small_part(dataset, *SUITE_DATA) for name, dataset in data.items()}
        for name, part in parts.items():
            mp.setitem(work_units._DATA_CACHE, (name, None, False), part)
        yield parts


@pytest.fixture(scope="module")
def suite_out(tmp_path_factory, small_suite_data):
    out = tmp_path_factory.mktemp("suite")
    with suite_data(small_suite_data):
        run_suite(parse_suite(SUITE, "tiny.toml"), out, SuiteOptions(progress=False))
    return out


@pytest.mark.slow  # the suite_out fixture: four runs, every analysis of the study and the report (~a minute of CPU)
def test_suite_writes_runs_analyses_and_report(suite_out):
    runs = sorted(p.parent.relative_to(suite_out / "runs").as_posix() for p in (suite_out / "runs").glob("*/*/summary.json"))
    assert len(runs) == 4 and all(r.startswith(("cnn/lenet5-cifar10-assignment-seed", "rnn/gru-h8-mnist-seed")) for r in runs)
    lenet0 = next((suite_out / "runs" / "cnn").glob("*seed0*"))
    for f in (
        "figures/filters_conv1.png",
        "tables/activations.csv",
        "figures/deconv_conv2_max.png",
        "figures/top9_conv2.png",
        "figures/occlusion_conv2.png",
        "figures/evolution_conv2.png",
        "figures/invariance.png",
        "explore.html",
        "microscope/index.html",
        "microscope/layers/001.js",
    ):
        assert (lenet0 / f).is_file(), f
    assert not (next((suite_out / "runs" / "cnn").glob("*seed1*")) / "figures").exists()  # analyses on the first seed
    for gru in (suite_out / "runs" / "rnn").iterdir():
        rows = read_csv(gru / "tables" / "rows_read.csv")
        assert [int(r["rows_read"]) for r in rows] == list(range(1, 29))
        assert len(read_csv(gru / "tables" / "gradient_by_step.csv")) == 28
    html = (suite_out / "report.html").read_text()
    assert "tiny &lt;study&gt; &amp; co" in html and "<study>" not in html
    assert html.count("data:image/png;base64,") >= 10
    assert "Reproduction check" in html and "Provenance" in html
    link = f"<a href='runs/cnn/{lenet0.name}/explore.html'>"  # relative: the folder can move
    assert link in html and (suite_out / "runs" / "cnn" / lenet0.name / "explore.html").is_file()
    assert f"<a href='runs/cnn/{lenet0.name}/microscope/index.html'>" in html  # the microscope of the first seed
    text = (lenet0 / "microscope" / "layers" / "000.js").read_text()  # each unit's best match in the other seed
    layer = json.loads(text[text.index(",") + 1 : text.rindex(")")])
    matches = layer["matches"]
    assert layer["training"]["iterations"] == [4, 8, 12]  # the snapshots, then the final weights
    assert all(len(images) == 32 * layer["training"]["k"] for images in layer["training"]["images"])
    assert matches["labels"] == ["seed 1"] and len(matches["unit"][0]) == len(matches["r"][0]) == len(matches["chance"]) == 32
    gru0, gru1 = (next((suite_out / "runs" / "rnn").glob(f"*seed{s}*")) for s in (0, 1))
    assert (gru0 / "explore.html").is_file() and not (gru1 / "explore.html").exists()  # the unit browser: first seed
    assert f"<a href='runs/rnn/{gru0.name}/explore.html'>" in html
    assert read_json(suite_out / "suite.json")["seeds"] == 2


@pytest.mark.slow  # suite_out
def test_rerun_skips_completed_runs(suite_out, small_suite_data, capsys):
    weights = sorted(suite_out.glob("runs/*/*/model.safetensors"))
    before = [os.stat(p).st_mtime_ns for p in weights]
    with suite_data(small_suite_data):
        run_suite(parse_suite(SUITE, "tiny.toml"), suite_out, SuiteOptions(progress=False), report=False)
    assert "4 runs, 4 already done, 0 to train" in capsys.readouterr().err
    assert [os.stat(p).st_mtime_ns for p in weights] == before


@pytest.mark.slow  # suite_out
def test_the_analyses_show_one_bar_over_every_run(suite_out, small_suite_data, capsys, monkeypatch):
    from netsight import progress

    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)
    with suite_data(small_suite_data):
        run_suite(parse_suite(SUITE, "tiny.toml"), suite_out, SuiteOptions(progress=True), report=False)
    err = capsys.readouterr().err
    n = 9 + 2 + 1  # the first LeNet5's nine, the GRUs' sequence (every seed) and explore (the first seed)
    assert "analyses: 100%" in err and f"| {n}/{n} " in err  # one bar, over all of them
    assert f"[analysis {n}/{n}]" in err and "kept (its files exist)" in err


@pytest.mark.slow  # suite_out
def test_report_rebuilds_from_run_directories_alone(suite_out, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(suite_out / "runs", copy / "runs")
    paths = build_report(copy)
    assert [p.name for p in paths] == ["report.html", "report.md"]
    assert "| gru | 8 | 2 |" in (copy / "report.md").read_text()


def test_interrupted_run_is_resumed_to_the_uninterrupted_result(tmp_path, monkeypatch, small_suite_data):
    text = '[[group]]\nname = "g"\nmodels = ["lstm"]\nhidden = [8]\niterations = 12\neval_every = 4\n'
    suite = parse_suite(text, "t.toml")
    with suite_data(small_suite_data, "mnist") as data:  # clean, stopped and resumed: all on the same small MNIST
        run_suite(suite, tmp_path / "clean", SuiteOptions(progress=False), report=False)
        spec = expand(suite)[0]
        original, calls = BatchSampler.next, {"n": 0}

        def ctrl_c_at_7(self):
            calls["n"] += 1
            if calls["n"] == 7:
                import signal

                signal.raise_signal(signal.SIGINT)
            return original(self)

        monkeypatch.setattr(BatchSampler, "next", ctrl_c_at_7)
        stopped = train(spec.config, tmp_path / "resumed" / "runs" / spec.dirname, dataset=data["mnist"], progress=False)
        assert stopped["status"] == "interrupted"
        monkeypatch.undo()
        run_suite(suite, tmp_path / "resumed", SuiteOptions(progress=False), report=False)
    clean = open_run(tmp_path / "clean" / "runs" / spec.dirname).metrics()
    resumed = open_run(tmp_path / "resumed" / "runs" / spec.dirname).metrics()
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in clean] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in resumed
    ]


def mnist_root(folder: Path, n_train: int, n_test: int) -> str:
    """A --data-root holding an evenly spread part of the bundled MNIST (every class) as its four IDX files: what
    worker processes, which small_suite_data does not reach, read in place of all 70,000 digits."""
    from netsight.data import load_dataset
    from netsight.data.formats import encode_idx
    from netsight.data.sources import IDX_NAMES

    part = small_part(load_dataset("mnist"), n_train, n_test)
    arrays = {
        "train_x": part.train_images[:, 0],
        "train_y": part.train_labels,
        "test_x": part.test_images[:, 0],
        "test_y": part.test_labels,
    }
    folder.mkdir(parents=True)
    for key, name in IDX_NAMES.items():
        (folder / name).write_bytes(encode_idx(arrays[key].numpy()))
    return str(folder)


@pytest.mark.slow  # two worker processes, each importing torch and loading the digits
def test_parallel_jobs_give_the_same_results(tmp_path):
    """One job and two give the same runs. On 1,000 train / 1,000 test digits, read by this process and by both
    workers from one --data-root (0.02 of accuracy: 20 test digits; on one thread the runs are the same to the bit)."""
    text = '[[group]]\nname = "g"\nmodels = ["rnn"]\nhidden = [8, 16]\niterations = 8\neval_every = 4\n'
    suite = parse_suite(text, "t.toml")
    root = mnist_root(tmp_path / "mnist", 1000, 1000)
    run_suite(suite, tmp_path / "one", SuiteOptions(progress=False, data_root=root), report=False)
    run_suite(suite, tmp_path / "two", SuiteOptions(progress=False, jobs=2, data_root=root), report=False)
    for spec in expand(suite):
        a = open_run(tmp_path / "one" / "runs" / spec.dirname)
        b = open_run(tmp_path / "two" / "runs" / spec.dirname)
        assert a.summary["status"] == b.summary["status"] == "completed"
        assert a.summary["final_test_acc"] == pytest.approx(b.summary["final_test_acc"], abs=0.02)


@pytest.mark.parametrize("jobs, longest_first", [(1, False), (2, True)])
def test_parallel_workers_start_the_longest_runs_first(tmp_path, monkeypatch, jobs, longest_first):
    """With one worker the suite's order is kept (its log reads like the suite); with several the
    largest runs start first, so no long run is left alone at the end."""
    text = '[[group]]\nname = "g"\nmodels = ["rnn"]\nhidden = [8, 64, 16]\niterations = 8\neval_every = 4\n'
    started = []
    monkeypatch.setattr(local, "train_units", lambda units, out, options, finish, log: started.extend(units))
    run_suite(parse_suite(text, "t.toml"), tmp_path / "o", SuiteOptions(progress=False, jobs=jobs), report=False)
    hidden = [unit[0][0].config.hidden for unit in started]
    assert hidden == ([64, 16, 8] if longest_first else [8, 64, 16])


@pytest.mark.slow  # ten runs, their analyses and the comparison's figures
def test_sweep_comparison(tmp_path, small_suite_data):
    with suite_data(small_suite_data, "mnist"):  # 300 train / 50 test digits: the comparison's files and rows, not its accuracies
        paths = run_sweep(
            tmp_path,
            ["rnn", "gru"],
            [8, 32],
            ["lenet5"],
            "mnist",
            2,
            SuiteOptions(progress=False),
            {"iterations": 10, "eval_every": 5},
        )
    names = {p.name for p in paths}
    assert {
        "comparison.csv",
        "comparison.md",
        "curves_by_hidden.png",
        "curves_by_cell.png",
        "rows_read.png",
        "gradient_flow.png",
        "accuracy_vs_parameters.png",
    } <= names
    rows = read_csv(tmp_path / "comparison.csv")
    assert {(r["model"], r["hidden"]) for r in rows} == {("rnn", "8"), ("rnn", "32"), ("gru", "8"), ("gru", "32"), ("lenet5", "")}
    rnn32 = next(r for r in rows if (r["model"], r["hidden"]) == ("rnn", "32"))
    assert rnn32["report_%"] == "90.79" and rnn32["verdict"] == "below" and rnn32["seeds"] == "2"
    assert " ± " in rnn32["final_test_acc_%"]
    lenet = open_run(next((tmp_path / "runs" / "cnn").iterdir()))
    assert lenet.config.iterations == 10 and lenet.config.lr == 1e-4  # same budget, the CNN's own protocol


def test_report_keeps_to_the_runs_of_the_last_suite(tmp_path, small_suite_data):
    first = '[[group]]\nname = "g"\nmodels = ["rnn"]\nhidden = [8]\niterations = 4\neval_every = 4\n'
    with suite_data(small_suite_data, "mnist"):
        run_suite(parse_suite(first, "a.toml"), tmp_path, SuiteOptions(progress=False), report=False)
        run_suite(parse_suite(first.replace("[8]", "[16]"), "b.toml"), tmp_path, SuiteOptions(progress=False))
    assert len(list((tmp_path / "runs" / "g").iterdir())) == 2
    md = (tmp_path / "report.md").read_text()
    assert "| rnn | 16 |" in md and "| rnn | 8 |" not in md


def test_sweep_models_accept_any_registered_model(tmp_path, capsys, small_suite_data):
    from netsight.cli import main

    argv = ["sweep", "--models", "gru,lenet5", "--hidden", "8,16", "--cnn", "", "--iterations", "4", "--eval-every", "2"]
    with suite_data(small_suite_data, "mnist"):  # the CLI's suite in this process (--jobs 1), on 300 train / 50 test digits
        assert main([*argv, "--jobs", "1", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    rows = read_csv(tmp_path / "s" / "comparison.csv")
    assert [(r["model"], r["hidden"]) for r in rows] == [("gru", "8"), ("gru", "16"), ("lenet5", "")]  # lenet5 once
    assert main(["sweep", "--models", "gru,vgg", "--out", str(tmp_path / "t")]) == 2
    assert "--models vgg: unknown model; expected any of lenet5" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    from pathlib import Path

    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.slow  # a driver process and its two workers
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")
def test_parallel_workers_die_with_the_driver(tmp_path):
    """SIGTERM (or SIGKILL) to `netsight run --jobs 2` alone must not leave its workers training on."""
    import signal
    import subprocess
    import sys
    import time

    suite = tmp_path / "s.toml"
    suite.write_text('seeds = 2\n[[group]]\nname = "g"\nmodels = ["lstm"]\nhidden = [64]\niterations = 100000\n')
    # 200 random-pixel images in MNIST's files: the driver and both workers read them, not all 70,000 digits (what they
    # train on does not matter, only that they are training when the driver dies)
    write_idx_folder(tmp_path / "mnist", n_train=200, n_test=50)
    argv = ["run", str(suite), "--jobs", "2", "--quiet", "--out", str(tmp_path / "o"), "--data-root", str(tmp_path / "mnist")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "netsight", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "o").glob("runs/g/*/config.json")):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    workers = _children(proc.pid)
    assert len(workers) >= 2, workers  # the two workers (and the resource tracker)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
        time.sleep(0.1)
    alive = [
        w
        for w in workers
        if os.path.exists(f"/proc/{w}") and "Z" not in open(f"/proc/{w}/stat").read().rsplit(")", 1)[1].split()[0]
    ]
    assert alive == [], f"workers still running after their driver died: {alive}"


def test_a_refused_suite_writes_nothing(tmp_path, capsys):
    """Bad data (here a --data-root that does not exist) is found before the first write: no --out
    folder that looks like a result is left behind."""
    from netsight.cli import main

    out = tmp_path / "study"
    assert main(["run", "--quick", "--out", str(out), "--data-root", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "nowhere" in capsys.readouterr().err and not out.exists()


def test_a_suite_failing_before_any_run_trains_removes_its_folder(tmp_path, monkeypatch):
    from netsight.errors import NetsightError
    from netsight.suites import backends
    from netsight.suites.runner import SuiteOptions, run_suite
    from netsight.suites.spec import load_suite

    def unreachable(*args, **kwargs):
        raise NetsightError("--address 10.0.0.1:1: no Ray cluster answers there")

    monkeypatch.setattr(backends.get_backend("local"), "train_units", unreachable)
    out = tmp_path / "study"
    with pytest.raises(NetsightError, match="no Ray cluster"):
        run_suite(load_suite(None), out, SuiteOptions(quick=True, progress=False))
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # a folder that was there stays as it was (refused: not netsight's)
    with pytest.raises(NetsightError, match="holds files netsight did not write"):
        run_suite(load_suite(None), out, SuiteOptions(quick=True, progress=False))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
