"""ROAR and KAR (Hooker et al. 2019; suites/roar.py): the suite's mask groups, their one-line errors, the tables'
intervals and verdicts, a real retraining on a task whose informative pixels are known, and the quick suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from netsight.data import Dataset
from netsight.errors import NetsightError
from netsight.fileio import read_csv
from netsight.ops import masking
from netsight.suites import roar
from netsight.suites.spec import expand, load_suite, parse_suite
from netsight.train.config import resolve
from netsight.train.loop import train

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
seeds = 2
[[group]]
name = "trained"
models = ["lenet5"]
data = "cifar10-assignment"
[[group]]
name = "roar"
models = ["lenet5"]
data = "cifar10-assignment"
mask = { from = "trained", method = ["gradient", "random"], mode = ["roar", "kar"], fraction = [0.1, 0.5] }
quick_mask = { method = "random", fraction = 0.3 }
"""


def test_a_mask_group_expands_to_every_method_mode_fraction_and_seed_ranked_on_the_first_seed():
    suite = parse_suite(GOOD, "good.toml")
    specs = expand(suite)
    masked = [s for s in specs if s.config.mask is not None]
    assert len(masked) == 2 * 2 * 2 * 2
    source = next(s for s in specs if s.group == "trained" and s.config.seed == 0)
    assert {s.config.mask.source for s in masked} == {source.dirname}
    assert len({s.dirname for s in specs}) == len(specs)  # every run its own folder
    assert "roar-gradient-0.1-seed0" in masked[0].dirname
    quick = [s for s in expand(suite, quick=True) if s.config.mask is not None]
    assert {(s.config.mask.method, s.config.mask.mode, s.config.mask.fraction) for s in quick} == {
        ("random", "roar", 0.3),
        ("random", "kar", 0.3),
    }
    plain = resolve("lenet5")
    assert "mask" not in plain.to_dict()  # runs without a mask keep their keys


@pytest.mark.parametrize(
    "change, expected",
    [
        ("fraction = [0.1, 0.5] }", "mask.fraction = 1.5: expected a number in (0, 1)"),
        ('method = ["gradient", "random"]', "mask.method = ['gradient', 'magic']: expected any of"),
        ('mode = ["roar", "kar"]', "mask.mode = 'remove': expected roar, kar"),
        ('from = "trained"', "mask.from = 'nowhere': no such group"),
        ("quick_mask = ", "quick_mask.frac: unknown key; expected from, method, mode, fraction"),
    ],
)
def test_bad_mask_keys_are_one_line_errors_naming_the_file_group_and_key(change, expected):
    bad = {
        "fraction = [0.1, 0.5] }": "fraction = 1.5 }",
        'method = ["gradient", "random"]': 'method = ["gradient", "magic"]',
        'mode = ["roar", "kar"]': 'mode = "remove"',
        'from = "trained"': 'from = "nowhere"',
        "quick_mask = ": "quick_mask = { frac = 0.2 }\n#",
    }[change]
    with pytest.raises(NetsightError) as err:
        parse_suite(GOOD.replace(change, bad, 1), "bad.toml")
    message = str(err.value)
    assert "\n" not in message and message.startswith("bad.toml: group 2 (roar)") and expected in message, message


def test_a_mask_group_needs_its_keys_and_no_analyses_and_a_plain_source():
    with pytest.raises(NetsightError, match=r"mask: no mode"):
        parse_suite(GOOD.replace('mode = ["roar", "kar"], ', ""), "bad.toml")
    with pytest.raises(NetsightError, match="takes no analyses"):
        parse_suite(GOOD.replace('name = "roar"', 'name = "roar"\nanalyses = ["filters"]'), "bad.toml")
    with pytest.raises(NetsightError, match="trains no cnn-bn"):
        parse_suite(
            GOOD.replace(
                'models = ["lenet5"]\ndata = "cifar10-assignment"\nmask', 'models = ["cnn-bn"]\ndata = "cifar10-assignment"\nmask'
            ),
            "bad.toml",
        )


def test_the_cli_refuses_a_bad_mask_group_with_exit_2_and_writes_nothing(tmp_path):
    suite = tmp_path / "bad-roar.toml"
    suite.write_text(GOOD.replace('mode = ["roar", "kar"]', 'mode = "remove"'))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "netsight", "run", str(suite), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad-roar.toml: group 2 (roar): mask.mode = 'remove'" in lines[0], done.stderr
    assert not out.exists()


def test_the_builtin_roar_suite_has_the_full_grid():
    suite = load_suite("roar")
    specs = expand(suite)
    masked = [s for s in specs if s.config.mask is not None]
    assert len(masked) == 8 * 2 * 5 * 3
    assert {s.config.mask.method for s in masked} >= {"gradient", "smoothgrad_squared", "vargrad", "random"}
    assert {s.config.iterations for s in specs} == {5500}


# ------------------------------------------------------------------ tables, intervals, verdicts


def _rows(drop: dict[str, list[float]], base: float = 0.6) -> list[dict]:
    """roar_runs rows: random at `base` for every seed; each method `base - drop` (per seed) at two fractions."""
    rows = []
    for seed in range(len(next(iter(drop.values())))):
        for f in (0.1, 0.5):
            rows.append(dict(model="m / d", method="random", mode="roar", fraction=f, seed=seed, accuracy=base))
            for method, d in drop.items():
                rows.append(dict(model="m / d", method=method, mode="roar", fraction=f, seed=seed, accuracy=base - d[seed]))
    return rows


def test_verdicts_pair_by_seed_and_say_unsettled_when_the_interval_holds_zero():
    rows = _rows({"good": [0.1, 0.12, 0.08], "bad": [-0.05, -0.04, -0.06], "mixed": [0.05, -0.05, 0.01]})
    v = {r["method"]: r for r in roar.verdict_rows(rows, {"m / d": 1000})}
    assert (
        v["good"]["verdict"] == "yes"
        and 0.08 - 1e-9 <= v["good"]["lo"] <= v["good"]["estimate"] <= v["good"]["hi"] <= 0.12 + 1e-9
    )
    assert v["bad"]["verdict"] == "no"
    assert v["mixed"]["verdict"] == "unsettled" and v["mixed"]["lo"] < 0 < v["mixed"]["hi"]
    assert v["good"]["test"] == "ROAR: beats random" and v["good"]["n_seeds"] == 3 and v["good"]["threshold"] == 0.0
    one = roar.verdict_rows(_rows({"good": [0.2]}), {})
    assert one[0]["verdict"] == "unsettled" and "one seed" in one[0]["note"]


def test_accuracy_intervals_stay_inside_zero_one():
    rows = [
        dict(model="m", method="random", mode="kar", fraction=0.5, seed=s, accuracy=a) for s, a in enumerate([0.99, 1.0, 1.0])
    ]
    (s,) = roar.summary_rows(rows)
    assert 0 <= s["lo"] <= s["mean"] <= s["hi"] <= 1 and s["seeds"] == 3


# ------------------------------------------------------------------ a real retraining where the answer is known


def _patch_task(n_train=600, n_test=200, seed=0) -> tuple[Dataset, torch.Tensor]:
    """Two classes told apart only by a 4 x 4 patch (bright: class 1, dark: class 0); every other pixel is noise.
    Returns the data and the oracle map (1 on the patch, 0 elsewhere)."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.arange(n) % 2
        x = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
        x[:, :, 12:16, 12:16] = (y * 255).to(torch.uint8).view(-1, 1, 1, 1)
        return x, y

    (tx, ty), (vx, vy) = split(n_train), split(n_test)
    oracle = torch.zeros(28, 28)
    oracle[12:16, 12:16] = 1
    return Dataset("mnist", tx, ty, vx, vy, ("dark", "bright"), "test-fixture"), oracle


@pytest.mark.slow
def test_under_roar_a_map_that_finds_the_informative_pixels_beats_a_random_one(tmp_path):
    """Hooker et al.'s logic on a task where the answer is known: removing the top 10% of pixels by the oracle map
    (and by the trained model's gradient) takes the patch away, so the retrained model falls to chance; removing a
    random 10% leaves most of the patch, and the retrained model still reads it."""
    torch.manual_seed(0)
    data, oracle = _patch_task()
    # 50 iterations: random 1.0, oracle 0.5, gradient 0.5 (80 it.: the same; 150 it.: 0.55). The trained model and the
    # random run read the patch from their 20th iteration on (on 8 of 9 other seeds of the task: by the 30th; on one, not
    # within 60), so 50 leave 30 iterations of margin; each costs ~0.05 s of CPU
    config = resolve("lenet5", "mnist", iterations=50, batch_size=32, lr=1e-3, eval_every=50)
    trained = train(config, tmp_path / "trained", device="cpu", dataset=data, progress=False)
    assert trained["final_test_acc"] > 0.95
    from netsight.train.rundir import open_run

    model = open_run(tmp_path / "trained").model()
    fill = masking.fill_value(data.train_images)
    orders = {
        "oracle": (masking.pixel_order(oracle.expand(600, 28, 28)), masking.pixel_order(oracle.expand(200, 28, 28))),
        "gradient": (
            masking.method_order(model, data.train_images, "gradient")[0],
            masking.method_order(model, data.test_images, "gradient")[0],
        ),
        "random": (masking.random_order(600, 784), masking.random_order(200, 784, seed=1)),
    }
    acc = {}
    for method, (tr, te) in orders.items():
        masked = Dataset(
            "mnist",
            masking.apply_mask(data.train_images, masking.replaced(tr, "roar", 0.1), fill),
            data.train_labels,
            masking.apply_mask(data.test_images, masking.replaced(te, "roar", 0.1), fill),
            data.test_labels,
            data.classes,
            "test-fixture",
        )
        acc[method] = train(config, tmp_path / method, device="cpu", dataset=masked, progress=False)["final_test_acc"]
    assert acc["random"] > 0.9, acc  # most of the patch survives a random 10%
    assert acc["oracle"] < 0.65, acc  # the patch is gone: chance is 0.5
    assert acc["gradient"] < acc["random"] - 0.2, acc  # the gradient of the trained model finds the patch too


# ------------------------------------------------------------------ the quick suite end to end


@pytest.mark.slow
def test_the_quick_roar_suite_runs_and_writes_its_tables_and_figure(tmp_path, small_suite_data, monkeypatch):
    """The shipped suite with --quick, every run cut to 2 iterations instead of 100, on 200 training and 50 test
    images of the course data (what is checked is the grid, the masks and the tables, not what the runs learn:
    the VarGrad ranking of every image and each run's evaluations are what cost, and they grow with both)."""
    from netsight.suites import spec, work_units
    from netsight.suites.runner import SuiteOptions, run_suite
    from tests.conftest import small_part

    monkeypatch.setattr(spec, "QUICK_ITERATIONS", 2)
    out = tmp_path / "roar"
    with small_suite_data("cifar10-assignment") as data, pytest.MonkeyPatch.context() as mp:
        # a fifth of the small part, every class still in it (the course set is sorted by class: evenly spaced)
        mp.setitem(work_units._DATA_CACHE, ("cifar10-assignment", None, False), small_part(data["cifar10-assignment"], 200, 50))
        run_suite(load_suite("roar"), out, SuiteOptions(quick=True, progress=False, device="cpu"), report=False)
    runs = read_csv(out / "tables" / "roar_runs.csv")
    assert len(runs) == 2 * 2 * 1 * 2  # methods x modes x fractions x seeds
    assert {r["method"] for r in runs} == {"vargrad", "random"}
    summary = read_csv(out / "tables" / "roar.csv")
    assert all(0 <= float(r["lo"]) <= float(r["mean"]) <= float(r["hi"]) <= 1 for r in summary)
    verdicts = read_csv(out / "tables" / "verdicts_roar.csv")
    assert {v["test"] for v in verdicts} == {"ROAR: beats random", "KAR: beats random"}
    assert all(v["verdict"] in ("yes", "no", "unsettled") for v in verdicts)
    assert (out / "figures" / "roar.png").is_file()
    masks = list((out / "masks").glob("*/*.safetensors"))
    assert len(masks) == 2  # one ranking per method, shared by every mode, fraction and seed
    assert roar.report_items(out)


def test_the_report_block_says_each_verdict_and_none_in_quick_mode(tmp_path):
    from netsight.fileio import write_csv

    rows = _rows({"good": [0.1, 0.12, 0.08], "mixed": [0.05, -0.05, 0.01]})
    verdicts = roar.verdict_rows(rows, {"m / d": 1000})
    columns = list(verdicts[0])
    write_csv(tmp_path / "tables/verdicts_roar.csv", columns, [[v[c] for c in columns] for v in verdicts])
    items = roar.report_items(tmp_path)
    text = " ".join(i.text for i in items if i.kind == "p")
    assert "beats a random ranking under ROAR" in text and "is not shown to beat a random ranking" in text
    assert "Rong et al. 2022" in text and "53.7%" in text  # the measured mask leak, beside every verdict
    quick = roar.report_items(tmp_path, quick=True)
    assert "not judged" in quick[-1].text and "beats" not in " ".join(i.text for i in quick)
    assert roar.report_items(tmp_path / "elsewhere") == []
