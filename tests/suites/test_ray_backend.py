"""`--backend ray` on a real two-node Ray cluster on this machine (the session's `ray_cluster`): the run
directories equal the local backend's, a worker killed mid-task is retried, Ctrl-C on the driver
cancels the tasks and leaves --out resumable, an interrupted run resumes on the cluster, and bad
input is one line with exit 2.

Most tests run the CLI (or `run_suite`) in this process as a driver of the cluster (`ray_driver`, as a
notebook that called `ray.init` would): one Ray job for all of them, whose worker processes (each imports
torch and loads the datasets) start once instead of once per driver process. Where a test kills a task's
worker, kills the task book or presses Ctrl-C, a thread does it while the driver runs (`while_driving`). A
driver runs as its own process only where that is the point: joining a cluster at --address while a node is
lost, and starting a local instance. Bad input is tried in this process with no Ray
connection (`ray_not_connected`)."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import pytest
import ray
import torch

from netsight.cli import main
from netsight.fileio import read_csv
from netsight.suites.runner import SuiteOptions, run_suite
from netsight.suites.spec import expand, parse_suite
from netsight.train import open_run, train
from netsight.train.loop import BatchSampler

from .test_runner import SUITE

pytestmark = pytest.mark.ray  # every test here uses the session's Ray cluster or a driver process of its own

# the runner test's suite, training only, evaluated once at the end: what is compared (the run directories, backend
# against backend) does not depend on how often a run evaluates, and each evaluation reads a whole test set
TINY = re.sub(r"^analyses = .*\n", "", SUITE, flags=re.M).replace("eval_every = 4", "eval_every = 12")
assert TINY.count("eval_every = 12") == 2


def longer(seeds: int, iterations: int) -> str:
    """LeNet5 runs of several seconds each on one core: time to kill a worker or press Ctrl-C mid-task."""
    return (
        f'seeds = {seeds}\n[[group]]\nname = "cnn"\nmodels = ["lenet5"]\ndata = "cifar10-assignment"\n'
        f"iterations = {iterations}\neval_every = 50\n"
    )


@pytest.fixture
def cluster(ray_cluster):
    """The session's two Ray nodes of one CPU each (tests/conftest.py)."""
    return ray_cluster


# A process started in the background by a shell without job control (nohup ... &, some CI runners)
# inherits SIGINT ignored, and Python keeps it so: the drivers here restore Ctrl-C before anything else.
CTRL_C = "import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"


def netsight(*args, timeout=240, popen=False):
    """The CLI as its own process: finished (CompletedProcess), or still running (Popen) with popen=True."""
    cmd = [sys.executable, "-c", CTRL_C + "from netsight.cli import main\nraise SystemExit(main(sys.argv[1:]))", *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def in_process(capsys, *args) -> subprocess.CompletedProcess:
    """The CLI in this process (a driver of the cluster where the test asks for `ray_driver`): its exit code
    and what it printed, as `netsight` returns them for a process of its own."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["netsight", *map(str, args)], code, out, err)


def _suite_file(tmp_path, text, name="suite.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def task_processes(title: str = "ray::train_unit") -> list[int]:
    """Ray worker processes running a netsight task (Ray titles them ray::<function>, or ray::<actor class>)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(title.encode()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def task_folders() -> set[Path]:
    """The private folders of Ray tasks on this machine (train_unit makes one right after the task book
    has recorded where it started; a SIGKILLed task leaves its folder behind)."""
    return set(Path(tempfile.gettempdir()).glob("netsight-task-*"))


def wait_for_tasks(proc, before: Optional[set] = None, seconds=120) -> list[int]:
    """The processes of running tasks. With `before` (task_folders() from before the driver started),
    only once every running task has been recorded by the task book, so a kill lands after that."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        pids = task_processes()
        if pids and (before is None or len(task_folders() - before) >= len(pids)):
            return pids
        time.sleep(0.2)
    raise AssertionError("no Ray task started")


@pytest.fixture(autouse=True)
def _no_task_left_running():
    """Every test here finds this machine's Ray tasks and task book by their process titles (`task_processes`), so it
    starts only once the previous test's have gone: a worker still titled with its task outlives its driver's call by
    a moment. Seen in CI: a test killed the previous test's lingering worker instead of its own task, another counted
    two task books, and once a process stayed for good. Waits up to 60 s; then this test fails naming what is left,
    and kills it so the tests after it start clean instead of failing the same way."""
    import gc

    gc.collect()  # a handle to the previous in-process driver's task book: dropped now, not at some later collection
    deadline = time.monotonic() + 60
    while (left := task_processes() + task_processes("ray::TaskBook")) and time.monotonic() < deadline:
        time.sleep(0.2)
    titles = {pid: _title(pid) for pid in left}
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"Ray processes of an earlier test still running after 60 s (now killed): {titles}"


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"


def metrics_without_time(run_dir):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_csv(run_dir / "metrics.csv")]


def test_suite_on_two_nodes_equals_the_local_backend(ray_driver, tmp_path, capsys):
    cluster = ray_driver
    suite_file = _suite_file(tmp_path, TINY)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each Ray task gets with --cpus-per-task 1
    try:
        run_suite(parse_suite(TINY, str(suite_file)), tmp_path / "local", SuiteOptions(progress=False), report=False)
    finally:
        torch.set_num_threads(threads)
    args = ("run", suite_file, "--backend", "ray", "--address", cluster.address, "--out", tmp_path / "ray", "--quiet")
    done = in_process(capsys, *args)
    assert done.returncode == 0, done.stderr
    specs = expand(parse_suite(TINY, str(suite_file)))
    for spec in specs:
        local, remote = tmp_path / "local" / "runs" / spec.dirname, tmp_path / "ray" / "runs" / spec.dirname
        assert open_run(remote).summary["status"] == "completed"
        assert metrics_without_time(remote) == metrics_without_time(local)
        assert (remote / "model.safetensors").read_bytes() == (local / "model.safetensors").read_bytes()
        assert sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*")) == sorted(
            p.relative_to(local).as_posix() for p in local.rglob("*")
        )
    lines = [line for line in done.stderr.splitlines() if ": completed, test acc" in line]
    assert sorted(line.split(":")[0] for line in lines) == sorted(s.dirname for s in specs)  # a line per run
    assert len({line.split(" on node ")[1].split()[0] for line in lines}) == 2  # both nodes trained
    assert (tmp_path / "ray" / "report.html").is_file()
    again = in_process(capsys, *args)
    assert again.returncode == 0 and "4 runs, 4 already done, 0 to train" in again.stderr, again.stderr


def test_a_fleet_is_one_task(ray_driver, tmp_path, capsys):
    cluster = ray_driver
    text = 'seeds = 2\n[[group]]\nname = "g"\nmodels = ["gru"]\nhidden = [8]\niterations = 8\neval_every = 4\n'
    suite_file = _suite_file(tmp_path, text)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_suite(parse_suite(text, str(suite_file)), tmp_path / "local", SuiteOptions(progress=False, fleet="on"), report=False)
    finally:
        torch.set_num_threads(threads)
    done = in_process(
        capsys,
        "run",
        suite_file,
        "--backend",
        "ray",
        "--address",
        cluster.address,
        "--fleet",
        "on",
        "--out",
        tmp_path / "ray",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert "training 2 runs as 1 Ray task" in done.stderr
    for spec in expand(parse_suite(text, str(suite_file))):
        remote = tmp_path / "ray" / "runs" / spec.dirname
        assert open_run(remote).summary["fleet"]["members"] == 2
        assert metrics_without_time(remote) == metrics_without_time(tmp_path / "local" / "runs" / spec.dirname)


@contextmanager
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in this process while inside, whatever it inherited: a process started in the
    background without job control (some CI runners) has SIGINT ignored, and Python keeps it so (see CTRL_C)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def while_driving(call, ready, act, after: float = 0.0):
    """Run `call()` in this process (a `ray_driver`) while a thread polls `ready()` until it returns something, waits
    `after` seconds and calls `act(that)`: what the tests do to a driver process of their own, without starting a new
    Ray job whose workers import torch and load the data again (about 10 s each time on 2 cores). Returns `call()`'s
    result, or 130 after a KeyboardInterrupt (as the CLI exits), and what `ready()` gave."""
    import threading

    seen: list = []
    running = threading.Event()  # cleared once `call` has returned: a SIGINT after that would stop pytest itself

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and running.is_set():
            if (found := ready()) is not None:
                seen.append(found)
                time.sleep(after)
                if running.is_set():
                    act(found)
                return
            time.sleep(0.1)

    running.set()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ctrl_c_raises():
            result = call()
    except KeyboardInterrupt as exc:
        result = 130
        print(f"netsight: interrupted: {exc}", file=sys.stderr)  # the line the CLI prints before exiting 130
    finally:
        running.clear()
    watcher.join(timeout=after + 5)
    assert seen, "what the test waited for never came (no task started, or no checkpoint reached the driver)"
    return result, seen[0]


def once_a_task_runs(act, capsys, *args) -> subprocess.CompletedProcess:
    """The CLI in this process while a thread calls `act(pid of the first task's worker)` once the task book has
    recorded where the tasks started."""
    before = task_folders()

    def first_task():
        pids = task_processes()
        return pids[0] if pids and len(task_folders() - before) >= len(pids) else None

    done, _ = while_driving(lambda: in_process(capsys, *args), first_task, act)
    return done


def kill_the_first_task_while(capsys, *args) -> subprocess.CompletedProcess:
    return once_a_task_runs(lambda pid: os.kill(pid, signal.SIGKILL), capsys, *args)


def test_a_task_lost_for_good_is_named_with_its_node(ray_driver, tmp_path, capsys, monkeypatch):
    """With no retries left (MAX_RETRIES set to 0), a killed worker fails its run, and the error says on which node
    it was lost."""
    from netsight.suites.backends import ray as ray_backend

    monkeypatch.setattr(ray_backend, "MAX_RETRIES", 0)
    suite_file = _suite_file(tmp_path, longer(seeds=2, iterations=100))
    args = ("run", suite_file, "--backend", "ray", "--address", ray_driver.address, "--out", tmp_path / "o", "--quiet")
    done = kill_the_first_task_while(capsys, *args)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and last.startswith("netsight: error: 1 Ray task failed: cnn/lenet5-"), done.stderr
    assert ": lost on node " in last and ", attempt 1: WorkerCrashedError" in last, last
    assert len(list((tmp_path / "o" / "runs" / "cnn").iterdir())) == 1  # the other run, whole


# an LSTM on MNIST: ~10 s on one core, with an evaluation (a checkpoint chance) every 80 iterations, ~1 s apart (each
# evaluation reads MNIST's 10,000 test images: a third of the run's time was evaluating when it was every 40)
RESUMABLE = 'seeds = 1\n[[group]]\nname = "rnn"\nmodels = ["lstm"]\nhidden = [32]\niterations = 800\neval_every = 80\n'
EVALUATED = list(range(80, 801, 80))  # the iterations of a RESUMABLE run's metrics rows


def drive(
    capsys, suite_file, out, address, act, shared_out=False, after: float = 0.0, runs: int = 1, report: bool = False
) -> tuple[int, str, Path]:
    """`run_suite` in this process checkpointing every second (the CLI's default is a minute), while a thread calls
    `act(run directory)` once the driver holds a checkpoint of `runs` runs (sent by their tasks, installed under
    `out`). Returns the exit code the CLI would give (130 after Ctrl-C), stderr and the first checkpointed run's
    directory."""
    options = SuiteOptions(backend="ray", address=address, checkpoint_seconds=1.0, shared_out=shared_out, progress=False)

    def checkpointed():
        found = sorted(p.parent for p in Path(out).glob("runs/*/*/checkpoint.pt") if not p.parent.name.startswith("."))
        return found[0] if len(found) >= runs else None

    def run() -> int:
        run_suite(parse_suite(Path(suite_file).read_text(), str(suite_file)), out, options, report=report)
        return 0

    capsys.readouterr()
    code, run_dir = while_driving(run, checkpointed, act, after)
    return code, capsys.readouterr().err, run_dir


def kill_the_task(run: Path) -> None:
    deadline = time.monotonic() + 60
    while not (pids := task_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids, "the run has a checkpoint but no task is running"
    os.kill(pids[0], signal.SIGKILL)


def runs_beside(run: Path) -> list[Path]:
    """The run directories of `run`'s group (not a staging folder: its name starts with a dot)."""
    return sorted(p for p in run.parent.iterdir() if not p.name.startswith("."))


def check_it_resumed(code: int, err: str, run: Path) -> None:
    """The driver finished a RESUMABLE run from its checkpoint after its task's worker was killed (the one run whose
    line says so), and every run of the suite whole (`run`: one of them)."""
    assert code == 0, err
    lines = [line for line in err.splitlines() if ": completed, test acc" in line]
    resumed = [line for line in lines if "(resumed at iteration " in line]
    assert len(resumed) == 1, err  # the killed task's run, and no other
    resumed_at = int(resumed[0].split("(resumed at iteration ")[1].split()[0])
    assert 0 < resumed_at < 800 and resumed[0].endswith("after a lost worker)"), resumed[0]
    for done in runs_beside(run):
        assert [int(r["iteration"]) for r in read_csv(done / "metrics.csv")] == EVALUATED
        assert open_run(done).summary["status"] == "completed" and not (done / "checkpoint.pt").exists()


def test_a_worker_killed_mid_task_is_retried_from_the_last_checkpoint(ray_driver, tmp_path, capsys):
    """Two runs train, one on each node; once the driver holds a checkpoint of both, one task's worker is killed:
    Ray retries the task, which resumes from that checkpoint; the other run is not disturbed, the killed task's
    private folder is removed by a later task on this machine (the retry, at its start or its end: seen in a full
    run, the retry started while the killed worker was still exiting), and the report lists each run once."""
    before = task_folders()
    suite_file = _suite_file(tmp_path, RESUMABLE.replace("seeds = 1", "seeds = 2"))
    code, err, run = drive(capsys, suite_file, tmp_path / "o", ray_driver.address, kill_the_task, runs=2, report=True)
    check_it_resumed(code, err, run)
    runs = runs_beside(run)
    assert [p.name.split("-seed")[1][0] for p in runs] == ["0", "1"]  # every run once, nothing left beside them
    assert task_folders() == before
    report = (tmp_path / "o" / "report.md").read_text()
    assert all(report.count(f"| {p.name} |") == 1 for p in runs), report  # the table of runs


def test_a_node_lost_mid_task_has_its_work_retried_on_another(cluster, tmp_path):
    """A third node joins, each of the three nodes starts one run, and the third node dies (all its
    processes killed, as when a machine goes down): its run is trained again elsewhere."""
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        suite_file = _suite_file(tmp_path, longer(seeds=3, iterations=100))
        before = task_folders()
        proc = netsight(
            "run", suite_file, "--backend", "ray", "--address", cluster.address, "--out", tmp_path / "o", "--quiet", popen=True
        )
        deadline = time.monotonic() + 120
        while len(wait_for_tasks(proc, before)) < 3:  # one run per node: each node has one CPU
            assert time.monotonic() < deadline, "three tasks never ran at once"
            time.sleep(0.2)
        cluster.remove_node(doomed, allow_graceful=False)
        doomed = None
        _, err = proc.communicate(timeout=300)
    finally:
        if doomed is not None:
            cluster.remove_node(doomed)
    assert proc.returncode == 0, err
    assert f"on the Ray cluster at {cluster.address} (3 node(s)" in err  # a driver of its own joins it, as --address says
    runs = sorted((tmp_path / "o" / "runs" / "cnn").iterdir())
    assert len(runs) == 3 and all(open_run(r).summary["status"] == "completed" for r in runs)
    assert all([int(r["iteration"]) for r in read_csv(run / "metrics.csv")] == [50, 100] for run in runs)
    lines = [line for line in err.splitlines() if ": completed, test acc" in line]
    assert len(lines) == 3 and len({line.split(" on node ")[1].split()[0] for line in lines}) == 2, err  # two nodes left


def test_the_task_book_lets_finished_tasks_go_and_ends_with_the_run(ray_driver, tmp_path, monkeypatch):
    """The book holds a task's checkpoints (tens of MB for a CNN run) only until its result is in, and it ends with
    the driver's call, even in a driver that stays connected (a notebook, this test process)."""
    cluster = ray_driver
    from netsight.suites.backends import ray as ray_backend

    held, close = [], ray_backend._close_book
    monkeypatch.setattr(ray_backend, "_close_book", lambda r, book: held.append(r.get(book.holds.remote())) or close(r, book))
    run_suite(
        parse_suite(RESUMABLE.replace("800", "60").replace("eval_every = 80", "eval_every = 20"), str(tmp_path / "suite.toml")),
        tmp_path / "o",
        SuiteOptions(backend="ray", address=cluster.address, checkpoint_seconds=0.0, progress=False),
        report=False,
    )
    assert held == [0]
    deadline = time.monotonic() + 20
    while task_processes("ray::TaskBook") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not task_processes("ray::TaskBook")


def test_shared_out_trains_in_place_and_a_retry_resumes_from_disk(ray_driver, tmp_path, capsys):
    suite_file = _suite_file(tmp_path, RESUMABLE)
    before, private = task_folders(), []

    def look_then_kill(run: Path) -> None:
        private.append(task_folders() - before)
        kill_the_task(run)

    code, err, run = drive(capsys, suite_file, tmp_path / "o", ray_driver.address, look_then_kill, shared_out=True)
    assert private == [set()]  # written in place, not in a task's private folder
    check_it_resumed(code, err, run)
    assert "write their runs in place under" in err


def test_shared_out_is_refused_where_a_node_does_not_see_out(ray_driver, tmp_path, capsys, monkeypatch):
    """Simulated: the token file the nodes read holds another token than the driver's (as a node-local
    /tmp would). Every node is named, nothing trains."""
    import netsight.fileio as fileio

    real = fileio.write_text
    monkeypatch.setattr(fileio, "write_text", lambda p, t: real(p, "elsewhere" if str(p).endswith(".netsight-shared-out") else t))
    suite_file = _suite_file(tmp_path, TINY)
    done = in_process(
        capsys,
        "run",
        suite_file,
        "--backend",
        "ray",
        "--address",
        ray_driver.address,
        "--shared-out",
        "--out",
        tmp_path / "o",
        "--quiet",
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and last.startswith("netsight: error: --shared-out: "), done.stderr
    assert "is not the driver's --out on node(s) " in last and last.count(" (") >= 2, last  # both nodes named
    assert not list((tmp_path / "o").glob("runs/*/*"))


def test_runs_finish_when_the_task_book_dies(ray_driver, tmp_path, capsys):
    """The book (checkpoints, placements) is a convenience: killing it mid-run loses no run."""
    books: list[list[int]] = []

    def kill_the_book(run: Path) -> None:
        books.append(task_processes("ray::TaskBook"))
        os.kill(books[0][0], signal.SIGKILL)

    started = time.time()
    code, err, run = drive(capsys, _suite_file(tmp_path, RESUMABLE), tmp_path / "o", ray_driver.address, kill_the_book)
    assert len(books[0]) == 1
    assert code == 0, err
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())  # what a task prints goes to its worker's log
    said = [f.read_text(errors="replace") for f in logs.glob("worker-*.err") if f.stat().st_mtime >= started]
    assert any("the task book is unreachable" in t and "training on without sending checkpoints" in t for t in said)
    assert open_run(run).summary["status"] == "completed"
    assert [int(r["iteration"]) for r in read_csv(run / "metrics.csv")] == EVALUATED


def test_ctrl_c_cancels_the_tasks_keeps_their_checkpoints_and_a_rerun_resumes(ray_driver, tmp_path, capsys):
    """Ctrl-C in the driver (here: SIGINT to this process, as a notebook's interrupt) while both runs train, each on
    its node, 1.5 s after the driver holds a checkpoint of both: the tasks are cancelled (their workers gone within
    5 s, well before the runs could have finished), each run is left resumable at its last checkpoint (never a
    partial run without one), and a rerun resumes both: the rows kept stay, timings included."""
    suite_file = _suite_file(tmp_path, RESUMABLE.replace("seeds = 1", "seeds = 2"))

    def ctrl_c(run: Path) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    code, err, run = drive(capsys, suite_file, tmp_path / "o", ray_driver.address, ctrl_c, after=1.5, runs=2)
    assert code == 130 and "Ray tasks cancelled; rerun the same command" in err, err
    deadline = time.monotonic() + 5
    while task_processes() and time.monotonic() < deadline:  # cancelled tasks' workers are killed
        time.sleep(0.2)
    assert task_processes() == []
    runs = runs_beside(run)
    kept = {p: read_csv(p / "metrics.csv") for p in runs}
    assert len(runs) == 2
    for p in runs:
        assert open_run(p).summary["status"] == "running" and (p / "checkpoint.pt").is_file() and kept[p]
        assert len(kept[p]) < len(EVALUATED)  # cancelled mid-run, not finished
    args = ("run", suite_file, "--backend", "ray", "--address", ray_driver.address, "--out", tmp_path / "o", "--quiet")
    again = in_process(capsys, *args)
    assert again.returncode == 0, again.stderr
    assert "2 runs, 0 already done, 2 to train" in again.stderr, again.stderr
    for p in runs:
        rows = read_csv(p / "metrics.csv")
        assert [int(r["iteration"]) for r in rows] == EVALUATED
        assert rows[: len(kept[p])] == kept[p]  # the same rows, timings included: resumed, not trained again


def test_an_interrupted_run_resumes_on_the_cluster(ray_driver, tmp_path, monkeypatch, capsys):
    text = '[[group]]\nname = "g"\nmodels = ["lstm"]\nhidden = [8]\niterations = 12\neval_every = 4\n'
    suite_file = _suite_file(tmp_path, text)
    spec = expand(parse_suite(text, str(suite_file)))[0]
    original, calls = BatchSampler.next, {"n": 0}

    def ctrl_c_at_7(self):
        calls["n"] += 1
        if calls["n"] == 7:
            signal.raise_signal(signal.SIGINT)
        return original(self)

    monkeypatch.setattr(BatchSampler, "next", ctrl_c_at_7)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train(spec.config, tmp_path / "o" / "runs" / spec.dirname, progress=False)["status"] == "interrupted"
        monkeypatch.undo()
        run_suite(parse_suite(text, str(suite_file)), tmp_path / "clean", SuiteOptions(progress=False), report=False)
    finally:
        torch.set_num_threads(threads)
    done = in_process(
        capsys, "run", suite_file, "--backend", "ray", "--address", ray_driver.address, "--out", tmp_path / "o", "--quiet"
    )
    assert done.returncode == 0, done.stderr
    assert "1 runs, 0 already done, 1 to train" in done.stderr
    assert metrics_without_time(tmp_path / "o" / "runs" / spec.dirname) == metrics_without_time(
        tmp_path / "clean" / "runs" / spec.dirname
    )


def test_sweep_trains_on_the_cluster(ray_driver, tmp_path, capsys):
    done = in_process(
        capsys,
        "sweep",
        "--models",
        "rnn,gru",
        "--hidden",
        "8",
        "--cnn",
        "",
        "--iterations",
        "6",
        "--eval-every",
        "3",
        "--backend",
        "ray",
        "--address",
        ray_driver.address,
        "--shared-out",
        "--out",
        tmp_path / "s",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert "training 2 runs as 2 Ray tasks on the Ray instance this process was already connected to (2 node(s)" in done.stderr
    assert {r["model"] for r in read_csv(tmp_path / "s" / "comparison.csv")} == {"rnn", "gru"}
    assert not (tmp_path / "s" / ".netsight-shared-out").exists()  # the token file goes at the end


def test_without_address_a_local_instance_is_started(cluster, tmp_path):
    text = '[[group]]\nname = "g"\nmodels = ["rnn"]\nhidden = [8]\niterations = 4\neval_every = 2\n'
    done = netsight("run", _suite_file(tmp_path, text), "--backend", "ray", "--out", tmp_path / "o", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "on a local Ray instance (1 node(s)" in done.stderr  # not the two-node cluster running beside it
    assert open_run(next((tmp_path / "o" / "runs" / "g").iterdir())).summary["status"] == "completed"


def test_a_run_failing_on_a_node_is_named_with_the_node(ray_driver, tmp_path, capsys):
    cluster = ray_driver
    done = in_process(
        capsys,
        "run",
        _suite_file(tmp_path, TINY),
        "--backend",
        "ray",
        "--address",
        cluster.address,
        "--data-root",
        tmp_path / "no-data-here",
        "--out",
        tmp_path / "o",
        "--quiet",
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("netsight: error: 4 Ray tasks failed: ") and last.count("failed on node ") == 4, last
    assert not list((tmp_path / "o").glob("runs/*/*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--address", f"127.0.0.1:{_free_port()}"], "cannot reach a Ray head node there"),
        (["--address", "nonsense"], "expected auto or HOST:PORT"),
        (["--cpus-per-task", "64", "--address", "CLUSTER"], "no node of the Ray cluster has that much"),
        (["--gpus-per-task", "1", "--address", "CLUSTER"], "no node of the Ray cluster has that much"),
        (["--jobs", "2"], "--jobs 2 is for the local backend"),
        (["--device", "cuda"], "also ask for GPUs with --gpus-per-task"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cluster, ray_not_connected, tmp_path, capsys, flags, message):
    """In this process, with no Ray connection: netsight connects (or refuses to) as a process of its own would."""
    suite_file = _suite_file(tmp_path, TINY)
    flags = [cluster.address if f == "CLUSTER" else f for f in flags]
    started = time.monotonic()
    done = in_process(capsys, "run", suite_file, "--backend", "ray", *flags, "--out", tmp_path / "o", "--quiet")
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("netsight: error:") and time.monotonic() - started < 40
    assert not list((tmp_path / "o").glob("runs/*/*")) if (tmp_path / "o").exists() else True
    assert not ray.is_initialized()  # a connection netsight made is closed again


@pytest.mark.parametrize("flag", [["--address", "auto"], ["--shared-out"]])
def test_ray_flags_need_the_ray_backend(tmp_path, capsys, flag):
    done = in_process(capsys, "run", _suite_file(tmp_path, TINY), *flag, "--out", tmp_path / "o")
    assert done.returncode == 2 and "are for --backend ray" in done.stderr


def test_ray_not_installed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    done = in_process(capsys, "run", _suite_file(tmp_path, TINY), "--backend", "ray", "--out", tmp_path / "o")
    assert done.returncode == 2, done.stderr
    assert "Ray is not installed here; pip install 'netsight[ray]'" in done.stderr


ROAR = """
seeds = 1
[[group]]
name = "trained"
models = ["lenet5"]
data = "cifar10-assignment"
iterations = 8
eval_every = 4
[[group]]
name = "roar"
models = ["lenet5"]
data = "cifar10-assignment"
iterations = 8
eval_every = 4
mask = { from = "trained", method = "random", mode = "roar", fraction = [0.3, 0.7] }  # random: no ranking pass to wait for
"""


@pytest.mark.slow
def test_roar_retrainings_train_on_the_cluster_with_their_masks(ray_driver, tmp_path, capsys):
    """A mask group's runs are Ray tasks like any other: the source trains first, the driver ranks the pixels, each
    task carries its run's mask file and trains exactly what the local backend trains."""
    suite_file = _suite_file(tmp_path, ROAR, "roar.toml")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_suite(parse_suite(ROAR, str(suite_file)), tmp_path / "local", SuiteOptions(progress=False), report=False)
    finally:
        torch.set_num_threads(threads)
    done = in_process(
        capsys, "run", suite_file, "--backend", "ray", "--address", ray_driver.address, "--out", tmp_path / "ray", "--quiet"
    )
    assert done.returncode == 0, done.stderr
    for spec in expand(parse_suite(ROAR, str(suite_file))):
        local, remote = tmp_path / "local" / "runs" / spec.dirname, tmp_path / "ray" / "runs" / spec.dirname
        assert metrics_without_time(remote) == metrics_without_time(local)
    assert read_csv(tmp_path / "ray" / "tables" / "roar_runs.csv") == read_csv(tmp_path / "local" / "tables" / "roar_runs.csv")


def test_the_microscopes_dataset_pass_split_over_the_cluster_equals_brute_force(ray_driver, tmp_path):
    """The dataset pass in shards on both nodes, merged as they finish, equals the brute-force ranking exactly (ties
    included); a pass that a state file holds in part sends only the shards it lacks and ends with the same result."""
    from netsight.data.images import tensor_images
    from netsight.ops.dataset_pass import UnitTopK, dataset_pass, dataset_pass_on_ray
    from tests.helpers import K, assert_equals_brute_force, binary_images, tied_net

    net, images = tied_net(), binary_images()
    whole = dataset_pass_on_ray(net, tensor_images(images), k=K, batch_size=4, shards=4)
    assert whole.covered == [(0, 37)]
    assert_equals_brute_force(whole, net, images)
    state = tmp_path / "pass.safetensors"
    dataset_pass(net, tensor_images(images), k=K, state=state, shard=(0, 9))  # a first part done locally
    resumed = dataset_pass_on_ray(net, tensor_images(images), k=K, batch_size=4, state=state, shards=4)
    assert_equals_brute_force(resumed, net, images)
    assert UnitTopK.load(state).covered == [(0, 37)]


def test_a_killed_worker_not_yet_reaped_counts_as_dead():
    """A SIGKILLed worker stays a zombie until its parent reaps it: no longer running, so a task that looks for the
    folders of dead tasks in the meantime must remove its folder."""
    from netsight.suites.backends.ray import _alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _alive(child.pid) and _alive(os.getpid())
        child.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.05)
        assert not _alive(child.pid)  # a zombie: killed, not reaped (no wait() yet)
    finally:
        child.kill()
        child.wait()
    assert not _alive(child.pid)  # reaped: gone
