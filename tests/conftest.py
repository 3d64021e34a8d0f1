"""Fixtures that make tiny data in the real formats, find ../shared/data when present, and train the tiny runs
several modules read once per session (`tiny_runs`); `small_suite_data` lets an in-process suite read a small
stratified part of the bundled data instead of all of it."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tarfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from netsight.data import Dataset
from netsight.data.formats import encode_idx
from netsight.data.sources import IDX_NAMES
from netsight.data.specs import CIFAR10_CLASSES


SLOW_TIERS = ("slow", "ray", "browser")  # the markers `pytest --fast` leaves out (registered in pyproject.toml)


def pytest_addoption(parser):
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast tier for edit-test loops: leave out the tests marked slow, ray or browser "
        '(the same as -m "not slow and not ray and not browser")',
    )


# The README's command spreads the tests over the cores with pytest-xdist, a test file at a time (`-n auto --dist
# loadfile`): a file's tests share one worker, so the session resources of the Ray tests (all in
# suites/test_ray_backend.py: one two-node cluster; they read this machine's processes and task folders, so no
# other Ray test may run beside them) start once. Files are handed out in the order collected: the Ray file first
# (the longest), then the files with slow or browser tests, then the rest, so that no long file starts last.
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most 4 (each holds PyTorch and the datasets, ~1.3 GB)."""
    return max(1, min(os.cpu_count() or 1, 4))


def _file_rank(item) -> int:
    if item.get_closest_marker("ray"):
        return 0
    return 1 if any(item.get_closest_marker(m) for m in ("slow", "browser")) else 2


def pytest_collection_modifyitems(config, items):
    rank: dict[Path, int] = {}
    for item in items:
        rank[item.path] = min(rank.get(item.path, 2), _file_rank(item))
    items.sort(key=lambda item: rank[item.path])  # stable: a file's tests keep their order
    if not config.getoption("--fast"):
        return
    kept, left_out = [], []
    for item in items:
        (left_out if any(item.get_closest_marker(m) for m in SLOW_TIERS) else kept).append(item)
    config.hook.pytest_deselected(items=left_out)
    items[:] = kept


if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # n pytest-xdist workers share the cores: each gets its share (torch's default, one thread per core in every
    # worker, oversubscribes them, and small ops then spend their time waiting for each other)
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    torch.set_num_threads(_share)
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))  # the command-line tests' subprocesses too
THREADS = torch.get_num_threads()  # torch's default for this machine (or this worker's share), read before any test
os.environ.setdefault("NETSIGHT_STRICT_REPORT", "1")  # a study report missing a figure it expects fails the test


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test (or a module fixture, set up before this one) that sets torch's thread count must not change the
    next tests': a float64 comparison such as the fleet's sums in another order with one thread than with two
    (1.6e-9 against 1.8e-11). Every test ends with the default again."""
    yield
    torch.set_num_threads(THREADS)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# An unexpected exception inside `netsight.cli.main` propagates (instead of becoming the user's
# one-line "internal error" and exit 70), so no test can pass over a bug.
os.environ["NETSIGHT_DEBUG"] = "1"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def make_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def make_labels(n: int, classes: int = 10) -> np.ndarray:
    return (np.arange(n) % classes).astype(np.uint8)


def write_idx_folder(folder: Path, n_train: int = 30, n_test: int = 20, compress: bool = True, size: int = 28) -> dict:
    """The four MNIST IDX files (gzipped by default) with random pixels and cyclic labels."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_x": make_images(n_train, (size, size), 1),
        "train_y": make_labels(n_train),
        "test_x": make_images(n_test, (size, size), 2),
        "test_y": make_labels(n_test),
    }
    for key, stem in IDX_NAMES.items():
        data = encode_idx(arrays[key])
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def cifar_batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR-10 python batch as the official files hold it (a pickled dict)."""
    return pickle.dumps(
        {
            b"batch_label": b"test",
            b"labels": labels,
            b"data": images.reshape(len(images), -1),
            b"filenames": [f"{i}.png".encode() for i in range(len(images))],
        },
        protocol=2,
    )


def write_cifar_batches(folder: Path, per_batch: int = 20, seed: int = 0) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for i in range(1, 6):
        x = make_images(per_batch, (3, 32, 32), seed + i)
        y = [int(v) for v in make_labels(per_batch)]
        (folder / f"data_batch_{i}").write_bytes(cifar_batch_bytes(x, y))
        train_x.append(x)
        train_y += y
    test_x, test_y = make_images(per_batch, (3, 32, 32), seed + 9), [int(v) for v in make_labels(per_batch)]
    (folder / "test_batch").write_bytes(cifar_batch_bytes(test_x, test_y))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}))
    return {"train_x": np.concatenate(train_x), "train_y": np.array(train_y), "test_x": test_x, "test_y": np.array(test_y)}


def write_image_tree(root: Path, per_class: dict, mode: str = "RGB", size: int = 32, names=CIFAR10_CLASSES, ext=".png") -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name in names:
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size, size, 3) if mode == "RGB" else (size, size)
                Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(d / f"{i:04d}{ext}")


def tar_folder(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return dest


def tiny_dataset(name: str = "mnist", n_train: int = 256, n_test: int = 100, shape=(1, 28, 28), seed: int = 0) -> Dataset:
    """Random-pixel data whose label is learnable (it is written into the image's brightness)."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.arange(n) % 10
        x = torch.randint(0, 60, (n, *shape), generator=g, dtype=torch.uint8)
        x[:, :, : shape[1] // 2] += (y * 19).to(torch.uint8).view(-1, 1, 1, 1)
        return x, y

    (tx, ty), (vx, vy) = split(n_train), split(n_test)
    return Dataset(name, tx, ty, vx, vy, tuple(str(i) for i in range(10)), "test-fixture")


@pytest.fixture
def tiny():
    return tiny_dataset()


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` (folders too) with its content's SHA-256 ("dir" for a folder): equal
    snapshots before and after a command mean it created, changed and deleted nothing there."""
    import hashlib

    root = Path(root)
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


# --------------------------------------------------------------------------- tiny trained runs, once per session

# name -> (model, data, the tiny dataset's sizes, the training settings). Each is trained the first time a test asks
# for it and kept for the session; the modules that read them depend only on what is written here.
TINY_RUNS = {
    # LeNet5 on course-shaped data, with two snapshots (evolution, the explore page's evolution strip)
    "lenet5": ("lenet5", "cifar10-assignment", {}, dict(iterations=12, eval_every=6, batch_size=16, snapshots=[3, 6])),
    # the batch-norm CNN: its filters, activation statistics and explore page
    "cnn-bn": ("cnn-bn", "cifar10-assignment", {}, dict(iterations=10, eval_every=5, batch_size=16)),
    # an LSTM of 8 units with two snapshots (the gates' course over training)
    "lstm": (
        "lstm",
        "mnist",
        {"n_train": 64, "n_test": 30},
        dict(iterations=6, eval_every=3, batch_size=16, hidden=8, snapshots=[2, 4]),
    ),
}


class TinyRuns:
    """The session's tiny trained runs. `path(name)` is the shared run directory: read it, never write into it;
    `copy(name, dest)` gives a test (or a module) its own copy to write figures and tables into. `data(name)` is
    the tiny dataset it was trained on."""

    def __init__(self, root: Path):
        self.root = root

    def data(self, name: str) -> Dataset:
        _, data, sizes, _ = TINY_RUNS[name]
        return tiny_dataset(data, **sizes)

    def path(self, name: str) -> Path:
        out = self.root / name
        if not (out / "summary.json").is_file():
            self.train(name, out)
        return out

    def train(self, name: str, out: Path, seed: int = 0) -> Path:
        """Train run `name` into `out` (with `seed`: another seed of it, as a suite's next seed would be)."""
        from netsight.train import resolve, train

        model, data, _, settings = TINY_RUNS[name]
        config = resolve(model, data, **settings, seed=seed)
        summary = train(config, out, dataset=self.data(name), progress=False, device="cpu")
        assert summary["status"] == "completed", summary
        return Path(out)

    def copy(self, name: str, dest: Path) -> Path:
        shutil.copytree(self.path(name), dest)
        return Path(dest)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("tiny-runs"))


# --------------------------------------------------------------------------- small data for in-process suites

SMALL = {"mnist": (1000, 100), "cifar10-assignment": (1000, 100)}  # (train, test) images: every class, evenly spread


def _spread(n_have: int, n_want: int) -> torch.Tensor:
    # MNIST comes shuffled, the course set sorted by class: even spacing keeps every class, in equal shares for the latter
    return torch.linspace(0, n_have - 1, n_want).round().long()


def small_part(data: Dataset, n_train: int, n_test: int) -> Dataset:
    """Evenly spaced images of a real dataset: the same classes, pixels and shapes, a tenth or less of the work."""
    tr, te = _spread(len(data.train_labels), n_train), _spread(len(data.test_labels), n_test)
    return replace(
        data,
        train_images=data.train_images[tr],
        train_labels=data.train_labels[tr],
        test_images=data.test_images[te],
        test_labels=data.test_labels[te],
    )


_SMALL_CACHE: dict[str, Dataset] = {}


@contextmanager
def _small_suite_data(*names: str):
    """While inside, a suite run in this process (the local backend with one job; not worker processes or Ray
    tasks, which load their own) reads `small_part`s of the bundled datasets (all of SMALL unless `names` are
    given) in place of the whole sets; yields them by name."""
    from netsight.data import load_dataset
    from netsight.suites import work_units as units

    with pytest.MonkeyPatch.context() as mp:
        for name in names or tuple(SMALL):
            if name not in _SMALL_CACHE:
                _SMALL_CACHE[name] = small_part(load_dataset(name), *SMALL[name])
            mp.setitem(units._DATA_CACHE, (name, None, False), _SMALL_CACHE[name])
        yield {name: _SMALL_CACHE[name] for name in names or tuple(SMALL)}


@pytest.fixture(scope="session")
def small_suite_data():
    """`with small_suite_data() as data: run_suite(...)`: see _small_suite_data (usable from a fixture of any scope)."""
    return _small_suite_data


# --------------------------------------------------------------------------- one headless Chromium per session

PLAYWRIGHT_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium (or Chrome); skipped where there is none, failed in CI (which installs it)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return str(shutil.which(name))
    if os.environ.get("CI"):
        pytest.fail("CI must install Debian's chromium for the browser test (.ci/run does)")
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


@pytest.fixture(scope="session")
def _chromium_session():
    """Playwright and one headless Chromium, started once for the session's browser tests (each launch costs
    Playwright's driver process and a browser start, ~2 s of CPU)."""
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=PLAYWRIGHT_FLAGS)
        yield browser
        browser.close()


class BrowserContexts:
    """A test's side of the shared Chromium: `new_context(...)` and `new_page(...)` (a page in a context of its own)
    take Playwright's arguments; every context the test opened is closed when it ends, so no page, history,
    storage or cookie reaches the next test."""

    def __init__(self, browser):
        self.browser, self.opened = browser, []

    def new_context(self, **options):
        context = self.browser.new_context(**options)
        self.opened.append(context)
        return context

    def new_page(self, **options):
        return self.new_context(**options).new_page()

    def close(self) -> None:
        for context in self.opened:
            context.close()


@pytest.fixture
def browser(_chromium_session):
    """The session's headless Chromium, through a fresh set of contexts for this test (see BrowserContexts)."""
    contexts = BrowserContexts(_chromium_session)
    yield contexts
    contexts.close()


# --------------------------------------------------------------------------- one Ray cluster per session

_RAY: dict = {}  # "cluster": the session's two-node cluster while it runs; "last": the last test that uses it


@pytest.fixture(scope="session")
def ray_cluster():
    """Two Ray nodes of one CPU each on this machine (ray.cluster_utils.Cluster), started once for every test of the
    session that asks (a start costs ~15 s of CPU); a test may add a node and must remove it again. The cluster is
    shut down right after the last test that uses it (`pytest_runtest_teardown`), not at the end of the session,
    so its idle daemons do not run beside the tests after it."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    env = {k: os.environ.pop(k) for k in ("RAY_ADDRESS",) if k in os.environ}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    _RAY["cluster"] = cluster
    yield cluster
    _stop_ray_cluster(ray)
    os.environ.update(env)


def _stop_ray_cluster(ray) -> None:
    cluster = _RAY.pop("cluster", None)
    if cluster is not None:
        if _RAY.pop("driver_of", None) is cluster and ray.is_initialized():  # this process was a driver of it
            ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def ray_driver(ray_cluster):
    """This test process as a driver of the session's cluster: one Ray job for every test that asks, so its worker
    processes (each imports torch and loads the datasets once) are reused from test to test instead of being
    started for each driver process. netsight's `connect` keeps a connection the process already has, as a
    notebook's; a test of netsight's own connecting (`--address`, a local instance) uses `ray_not_connected`
    or a driver process of its own."""
    import ray

    if ray.is_initialized() and _RAY.get("driver_of") is not ray_cluster:
        ray.shutdown()
    if not ray.is_initialized():
        ray.init(address=ray_cluster.address, logging_level="WARNING", log_to_driver=False)  # what the CLI prints, alone
        _RAY["driver_of"] = ray_cluster
    return ray_cluster


@pytest.fixture
def ray_not_connected():
    """This test process with no Ray connection (one a `ray_driver` test left is closed), so netsight's own
    `connect` runs as in a fresh process."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _RAY.pop("driver_of", None)


def pytest_collection_finish(session):
    users = [item for item in session.items if "ray_cluster" in getattr(item, "fixturenames", ())]
    _RAY["last"] = users[-1].nodeid if users else None


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down
def pytest_runtest_teardown(item, nextitem):
    if item.nodeid == _RAY.get("last") and "cluster" in _RAY:
        import ray

        _stop_ray_cluster(ray)
