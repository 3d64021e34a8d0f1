"""The Ray backend: a suite's units of work (fleets, or single runs) as Ray tasks on a cluster.

Ray is the distributed engine here (it runs on plain machines, Slurm and Kubernetes); netsight
only decides what one task is and how its results come home:
- one task trains one unit in a private temporary folder on its node, reading the dataset from
  that node's `--data-root` or the bundled copy, with torch's threads set to the cores granted;
- the task returns the run directories' files (`transfer.pack_folder`) and the driver installs
  them atomically under `--out` (`transfer.install_folder`), so no shared filesystem is needed;
  an interrupted run's files travel to the task, which resumes from its checkpoint;
- at each checkpoint a task sends what changed in its run directories (`transfer.pack_changes`)
  to a small actor (`_task_book`), which keeps them whole and records where each attempt started;
  the driver installs that progress under `--out`;
- with `--shared-out` (`--out` is on storage every node mounts at the same path), each node is
  first checked to see a token file the driver wrote there, and the tasks train in place under
  `--out`: nothing travels, and a retry resumes from the checkpoint on that storage;
- a task whose worker process or node dies is retried by Ray (up to `MAX_RETRIES` times) from its
  last checkpoint; a run directory under `--out` only changes whole, so a retry never leaves a
  duplicate or a half-written run; a task lost for good is reported with the node it was lost on;
- Ctrl-C on the driver cancels every task still queued or running and keeps their last
  checkpoints; rerunning the same command resumes them and trains the rest.
Without `--address` a local Ray instance is started (and stopped at the end), so a laptop takes
the same code path as a cluster.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ...cluster import CONNECT_TIMEOUT_S, connect, import_ray  # noqa: F401  (this backend's callers use them from here)
from ...errors import NetsightError
from ...text import plural
from ..transfer import install_folder, pack_changes, pack_folder
from ..work_units import accuracy_text, train_runs

MAX_RETRIES = 3  # Ray's retries of a task whose worker process or node died
SHARED_TOKEN = ".netsight-shared-out"  # written under --out by the driver; every node must read it back
SHARED_CHECK_TIMEOUT_S = 120.0


def unit_device(options) -> str:
    """The device a task trains on: the GPU Ray grants it, or the CPU."""
    if options.device == "auto":
        return "cuda" if options.gpus_per_task > 0 else "cpu"
    if options.device.startswith("cuda") and options.gpus_per_task <= 0:
        raise NetsightError(
            f"--device {options.device} with --backend ray: also ask for GPUs with --gpus-per-task "
            f"(e.g. 1, or 0.25 to share one GPU between four tasks)"
        )
    return "cuda" if options.device.startswith("cuda") else options.device  # Ray picks the GPU (CUDA_VISIBLE_DEVICES)


def resolve_jobs(options, units: int) -> int:
    """One driver process: the cluster's resources set how many units train at once."""
    return 1


def check_resources(ray, cpus: float, gpus: float) -> None:
    """Refuse a request no live node can meet (Ray would queue the tasks forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        return
    largest: dict[str, float] = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    raise NetsightError(
        f"--cpus-per-task {cpus:g} --gpus-per-task {gpus:g}: no node of the Ray cluster has that much "
        f"(its {plural(len(nodes), 'node')} offer at most {largest.get('CPU', 0):g} CPU and "
        f"{largest.get('GPU', 0):g} GPU each)"
    )


def _task_book(ray):
    """A small actor that knows each task's attempts: where the last one started (so a task whose
    worker or node died is still reported with its node) and the run directories as of its last
    checkpoint (so a retry resumes from there, and the driver keeps that progress under --out).
    Defined here, not at module level, so Ray ships the class by value and its process never
    imports torch."""

    class TaskBook:
        def __init__(self):
            self.where: dict[str, dict] = {}
            self.latest: dict[str, list] = {}
            self.fresh: set[str] = set()

        def started(self, task_id: str, where: dict) -> tuple[int, Optional[list]]:
            """This attempt's number and the runs as of the task's last checkpoint (None: none sent)."""
            self.where[task_id] = {**where, "attempts": self.where.get(task_id, {}).get("attempts", 0) + 1}
            return self.where[task_id]["attempts"], self.latest.get(task_id)

        def checkpointed(self, task_id: str, changes: list) -> None:
            """`changes`: per run, the files changed since this attempt's last call and every file's name."""
            previous = self.latest.get(task_id) or [{} for _ in changes]
            self.latest[task_id] = [
                {name: changed[name] if name in changed else old[name] for name in names}
                for old, (changed, names) in zip(previous, changes, strict=True)
            ]
            self.fresh.add(task_id)

        def lookup(self, task_id: str) -> Optional[dict]:
            return self.where.get(task_id)

        def drain(self) -> dict[str, list]:
            """The checkpoints that arrived since the last call."""
            out = {t: self.latest[t] for t in self.fresh}
            self.fresh.clear()
            return out

        def finished(self, task_id: str) -> None:
            """The driver has the task's result: its checkpoints (tens of MB for a CNN run) are let go."""
            self.where.pop(task_id, None)
            self.latest.pop(task_id, None)
            self.fresh.discard(task_id)

        def holds(self) -> int:
            """How many tasks' records are kept (the tests check that finished tasks are let go)."""
            return len(self.where) + len(self.latest)

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy=here)(TaskBook).remote()  # on the driver's node


def _where_it_died(ray, book, ref) -> str:
    try:
        where = ray.get(book.lookup.remote(ref.task_id().hex()), timeout=CONNECT_TIMEOUT_S)
    except ray.exceptions.RayError:  # the book's own node is gone too
        where = None
    if not where:
        return "before it started on any node"
    return f"on node {where['node']} ({where['host']}), attempt {where['attempts']}"


def _iteration(summary: Optional[bytes]) -> int:
    """Iterations done, from a run's summary.json (0 when there is none or it is unreadable)."""
    import json

    if summary is None:
        return 0
    try:
        return int(json.loads(summary)["iterations_done"])
    except (KeyError, ValueError, TypeError):
        return 0


def train_unit(
    configs: list[dict],
    dirnames: list[str],
    inputs: list[dict[str, bytes]],
    options,
    book=None,
    shared: Optional[tuple[list[str], str, str]] = None,
) -> dict[str, Any]:
    """One Ray task: train a fleet (or one run) in a temporary folder and return its files, or
    with `shared` = (run paths, token file, token) train in place on storage the driver sees too.

    A retry (the previous attempt's worker or node died) starts from the unit's last checkpoint:
    the one that reached the book, or with `shared` the one on disk. An error inside training
    comes back as a value naming this node, so the driver can say where it happened; Ray retries
    only lost workers and nodes, never a run that failed."""
    import ray

    context = ray.get_runtime_context()
    task_id = context.get_task_id()
    if task_id is None:
        raise RuntimeError("train_unit runs only as a Ray task (it has no task id here)")
    where = {"node": context.get_node_id()[:8], "host": socket.gethostname()}
    book = _BookClient(ray, book, task_id, dirnames)
    attempt, latest = book.call("started", where) or (1, None)  # before any work: a lost worker is named with its node
    threads = max(1, int(options.cpus_per_task))
    started = time.perf_counter()
    resumed_at = None
    if shared is not None:
        paths, token_file, token = shared
        if not _sees_token(token_file, token):
            return {
                **where,
                "error": f"--shared-out: {Path(token_file).parent} is not the driver's --out on this node "
                f"(its token file is missing or different); drop --shared-out or mount it here",
            }
        if attempt > 1:
            resumed_at = min(_iteration(_bytes_or_none(Path(p, "summary.json"))) for p in paths)
        result = _train_or_error(configs, paths, options, threads)
    else:
        if latest:
            inputs, resumed_at = latest, min(_iteration(files.get("summary.json")) for files in latest)
        _remove_folders_of_dead_tasks()
        with tempfile.TemporaryDirectory(prefix=f"{TASK_FOLDER_PREFIX}{os.getpid()}-") as tmp:
            paths = [str(Path(tmp, name.replace("/", "__"))) for name in dirnames]
            for path, files in zip(paths, inputs, strict=True):
                if files:
                    install_folder(path, files)
            stamps: list[dict] = [{} for _ in paths]  # what this attempt has sent: unchanged files go once

            def checkpointed() -> None:
                changes = []
                for i, path in enumerate(paths):
                    changed, names, stamps[i] = pack_changes(path, stamps[i])
                    changes.append((changed, names))
                book.call("checkpointed", changes)

            result = _train_or_error(configs, paths, options, threads, checkpointed)
            if "summaries" in result:
                result["runs"] = [pack_folder(p) for p in paths]
        _remove_folders_of_dead_tasks()  # again: a retry can start while its killed worker is still exiting
    return {**where, **result, "seconds": time.perf_counter() - started, "resumed_at": resumed_at or None}


def _train_or_error(
    configs: list[dict], paths: list[str], options, threads: int, on_checkpoint: Optional[Callable[[], None]] = None
) -> dict[str, Any]:
    """{"summaries": [...]}, or {"error": "..."} when training raised (the driver reports it with the node)."""
    try:
        return {"summaries": train_runs(configs, paths, options, threads, False, on_checkpoint)}
    except Exception as exc:  # noqa: BLE001 - reported with its node by the driver
        return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}


def _bytes_or_none(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _sees_token(token_file: str, token: str) -> bool:
    try:
        return Path(token_file).read_text(encoding="utf-8") == token
    except (OSError, UnicodeDecodeError):
        return False


def check_shared_out(ray, out: Path, cpus: float, gpus: float) -> str:
    """Write a token file under `out` and have every live node that can run a task (`cpus` and
    `gpus` per task) read it back; refuse the suite if one does not see it (its tasks would write
    their runs where the driver never looks). Returns the token. A node that joins later is
    checked by each task it runs."""
    import secrets

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from ...fileio import write_text

    token, token_file = secrets.token_hex(16), os.path.abspath(out / SHARED_TOKEN)
    write_text(token_file, token)
    probe = ray.remote(num_cpus=0, max_retries=0)(_sees_token)  # a module-level function: its workers import netsight
    nodes = [
        n
        for n in ray.nodes()
        if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= cpus and n.get("Resources", {}).get("GPU", 0) >= gpus
    ]
    refs = [
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False)).remote(
            token_file, token
        )
        for n in nodes
    ]
    try:
        seen = ray.get(refs, timeout=SHARED_CHECK_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise NetsightError(
            f"--shared-out: the nodes did not answer within {SHARED_CHECK_TIMEOUT_S:g} s whether they "
            f"see {out}; check that the cluster's nodes are up (`ray status`), or drop --shared-out"
        ) from None
    blind = [f"{n['NodeID'][:8]} ({n.get('NodeManagerHostname', '?')})" for n, ok in zip(nodes, seen, strict=True) if not ok]
    if blind:
        raise NetsightError(
            f"--shared-out: {os.path.abspath(out)} is not the driver's --out on node(s) "
            f"{', '.join(blind)} (they cannot read the token file written there); put --out on storage "
            f"every node mounts at the same path, or drop --shared-out to send the runs to the driver"
        )
    return token


TASK_FOLDER_PREFIX = "netsight-task-"


def _remove_folders_of_dead_tasks() -> None:
    """A task whose worker was killed (SIGKILL, a lost node coming back) leaves its private folder
    behind, up to tens of MB per LeNet5 run. The folder is named after the worker's pid; one whose
    process is gone from this node is removed by the next task that starts or ends here (at the end
    too: Ray can start the killed task's retry while the killed worker is still exiting, and then its
    pid still answers)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TASK_FOLDER_PREFIX}*-*"):
        pid = folder.name[len(TASK_FOLDER_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)) and folder.is_dir():
            try:
                shutil.rmtree(folder)
            except FileNotFoundError:  # another task starting on this node removed it first
                pass
            except OSError as exc:  # not worth failing the task for: say so and train on
                print(
                    f"netsight: warning: could not remove the leftover task folder {folder}: {exc}", file=sys.stderr, flush=True
                )


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this node. A killed worker its parent has not reaped yet (a zombie) is not
    alive: it holds no files and never writes again, and a retried task can start before the reaping."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux), or it went in between: trust the signal
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")  # the state, after the name "(...)"


class _BookClient:
    """A task's side of the task book. If the book is unreachable (its node died), the task trains
    on without sending checkpoints, and says so once."""

    def __init__(self, ray, handle, task_id: str, dirnames: Sequence[str]):
        self.ray, self.handle, self.task_id, self.dirnames = ray, handle, task_id, dirnames

    def call(self, method: str, *args):
        if self.handle is None:
            return None
        try:
            return self.ray.get(getattr(self.handle, method).remote(self.task_id, *args))
        except self.ray.exceptions.RayError as exc:
            self.handle = None
            print(
                f"netsight: warning: {', '.join(self.dirnames)}: the task book is unreachable ({type(exc).__name__}); "
                f"training on without sending checkpoints",
                file=sys.stderr,
                flush=True,
            )
            return None


def _close_book(ray, book) -> None:
    """End the task book now that the driver has every result it will get. Ray would end it once
    every handle is gone, and a handle a worker still borrows keeps it alive as long as that worker
    lives (in a notebook's job: for hours). In CI one of netsight's Ray processes outlived a test's
    call for good; ending the book here leaves no doubt about the book."""
    try:
        ray.kill(book, no_restart=True)
    except (ray.exceptions.RayError, ValueError):  # its node or the connection to the cluster is gone already
        pass


def _keep_progress(ray, book, pending: dict, install: Callable[[list, list], None], timeout: float) -> None:
    """Install the runs of still-pending tasks as of their last checkpoint, so a driver that is
    killed or interrupted leaves them resumable from there."""
    try:
        progress = ray.get(book.drain.remote(), timeout=timeout)
    except ray.exceptions.RayError:
        return  # the book's node is gone: the progress is lost, the tasks are not
    by_id = {ref.task_id().hex(): ref for ref in pending}
    for task_id, runs in progress.items():
        if task_id in by_id:
            install(pending[by_id[task_id]], runs)


def train_units(
    units: Sequence[list], out: Path, options, finish: Callable[[list, list[dict]], None], log: Callable[[str], None]
) -> None:
    """Train `units` (lists of (RunSpec, path) under `out`) as Ray tasks; install each finished unit
    under its paths (with `--shared-out` the tasks wrote them there) and hand its summaries to
    `finish`. Every unit runs even when some fail; the failures are raised together at the end,
    each naming its run and node."""
    from ...progress import bar as progress_bar

    ray = import_ray()
    if options.cpus_per_task <= 0 or options.gpus_per_task < 0:
        raise NetsightError(
            f"--cpus-per-task {options.cpus_per_task:g} --gpus-per-task {options.gpus_per_task:g}: "
            f"expected at least one CPU and no negative GPU share"
        )
    options = replace(options, device=unit_device(options))
    failures: list[str] = []
    pending: dict = {}
    bar = book = None

    def install(unit, runs) -> None:
        for (_, path), files in zip(unit, runs, strict=True):
            install_folder(path, files)

    connected_here = connect(ray, options.address)
    try:
        check_resources(ray, options.cpus_per_task, options.gpus_per_task)
        where = (
            "the Ray instance this process was already connected to"
            if not connected_here
            else f"the Ray cluster at {options.address}"
            if options.address
            else "a local Ray instance"
        )
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        log(
            f"training {plural(sum(len(u) for u in units), 'run')} as {plural(len(units), 'Ray task')} on {where} "
            f"({nodes} node(s), {options.cpus_per_task:g} CPU and {options.gpus_per_task:g} GPU per task)"
        )
        token = check_shared_out(ray, out, options.cpus_per_task, options.gpus_per_task) if options.shared_out else None
        if token:
            log(f"the tasks write their runs in place under {os.path.abspath(out)} (--shared-out: every node sees it)")
        task = ray.remote(train_unit).options(
            num_cpus=options.cpus_per_task, num_gpus=options.gpus_per_task, max_retries=MAX_RETRIES
        )
        book = _task_book(ray)
        for unit in units:
            configs, dirnames = [s.config.to_dict() for s, _ in unit], [s.dirname for s, _ in unit]
            if token:
                shared = ([os.path.abspath(p) for _, p in unit], os.path.abspath(out / SHARED_TOKEN), token)
                ref = task.remote(configs, dirnames, [], options, book, shared)
            else:
                ref = task.remote(configs, dirnames, [pack_folder(path) for _, path in unit], options, book)
            pending[ref] = unit
        bar = progress_bar(sum(len(u) for u in units), "runs", options.progress, "run", leave=True)
        say = bar.write if options.progress else log
        last_kept = time.monotonic()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=options.checkpoint_seconds)
            if time.monotonic() - last_kept >= options.checkpoint_seconds:
                _keep_progress(ray, book, pending, install, CONNECT_TIMEOUT_S)
                last_kept = time.monotonic()
            if not done:
                continue
            unit = pending.pop(done[0])
            names = ", ".join(s.dirname for s, _ in unit)
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # its worker or node died MAX_RETRIES + 1 times
                failures.append(
                    f"{names}: lost {_where_it_died(ray, book, done[0])}: {type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:200]}"
                )
                say(f"failed: {failures[-1]}")
                continue
            finally:
                book.finished.remote(done[0].task_id().hex())  # its checkpoints are no longer needed
            node = f"node {result['node']} ({result['host']})"
            if "error" in result:
                failures.append(f"{names}: failed on {node}: {result['error']}")
                say(f"failed: {failures[-1]}")
                continue
            if "runs" in result:  # without --shared-out: the files came with the result
                install(unit, result["runs"])
            resumed = f" (resumed at iteration {result['resumed_at']} after a lost worker)" if result["resumed_at"] else ""
            for (spec, _), s in zip(unit, result["summaries"], strict=True):
                say(f"{spec.dirname}: {s['status']}{accuracy_text(s)}, on {node} in {result['seconds']:.0f}s{resumed}")
            bar.update(len(unit))
            finish(unit, result["summaries"])
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        if pending and book is not None:  # what the cancelled tasks had checkpointed is kept: the rerun resumes there
            _keep_progress(ray, book, pending, install, CONNECT_TIMEOUT_S)
        raise KeyboardInterrupt("Ray tasks cancelled; rerun the same command to train the runs not yet done") from None
    finally:
        if bar is not None:
            bar.close()
        if book is not None:
            _close_book(ray, book)
        if options.shared_out:
            from ...fileio import remove

            remove(out / SHARED_TOKEN)
        if connected_here:
            ray.shutdown()
    if failures:
        raise NetsightError(f"{plural(len(failures), 'Ray task')} failed: " + "; ".join(failures))
