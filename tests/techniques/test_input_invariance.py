"""Input invariance (Kindermans et al. 2019) on netsight's own trained CNNs: the compensated twin computes the same
outputs on shifted images, and the paper's result holds: the gradient (and the methods built on it alone) keep their
maps, gradient x input and integrated gradients from a black baseline do not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsight.cli import main
from netsight.errors import NetsightError
from netsight.fileio import read_csv
from netsight.techniques.attribution_methods import METHOD_CLASSES, Normalize
from netsight.techniques.input_invariance import TOLERANCE, clopper_pearson, input_invariance, shifted_twin
from netsight.train.rundir import open_run


def _model_and_images(tiny_runs, name: str):
    run = open_run(tiny_runs.path(name))
    data = tiny_runs.data(name)
    x = data.test_images[:6].float().div(255)  # uint8 [N, 1, 28, 28]
    return run, x, [int(v) for v in data.test_labels[:6]]


@pytest.mark.parametrize("name", ["lenet5", "cnn-bn"])
def test_the_twin_computes_the_same_outputs_on_shifted_images(tiny_runs, name):
    run, x, _ = _model_and_images(tiny_runs, name)
    model = Normalize(run.model("cpu").eval(), (0.5,), (0.25,))
    twin = shifted_twin(model, -1.0).eval()
    with torch.no_grad():
        a, b = model(x), twin(x - 1.0)
        assert (a - b).abs().max() < 1e-5
        assert (model(x) - twin(x)).abs().max() > 1e-2  # the twin is not the model: unshifted images differ
    assert not isinstance(dict(model.model.named_modules())["conv1"], type(dict(twin.model.named_modules())["conv1"]))


def test_the_paper_result_gradient_invariant_input_x_gradient_and_ig_not(tiny_runs):
    run, x, targets = _model_and_images(tiny_runs, "lenet5")
    model = Normalize(run.model("cpu").eval(), (0.5,), (0.25,))
    names = ["gradient", "guided_backprop", "gradcam", "smoothgrad", "gradient_x_input", "integrated_gradients"]
    settings = {"gradcam": {"layer": "conv2"}, "smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 8}}
    methods = [METHOD_CLASSES[m](model, **settings.get(m, {})) for m in names]
    r = input_invariance(methods, x, targets, shift=-1.0)
    assert r.output_change < 1e-5
    for m in ("gradient", "guided_backprop", "gradcam", "smoothgrad"):
        assert r.changed(m) == 0, (m, r.relative_change[m])
    assert r.relative_change["gradient"].max() < 1e-4  # no rounding left to flip a ReLU: the same backward pass
    for m in ("gradient_x_input", "integrated_gradients"):
        assert r.changed(m) == len(x), (m, r.relative_change[m])
        assert r.relative_change[m].min() > 10 * TOLERANCE


def test_a_model_whose_first_operation_is_not_its_first_convolution_is_refused():
    class Squares(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.fc = nn.Linear(2 * 6 * 6, 3)

        def forward(self, x):
            return self.fc(self.conv(x * x).flatten(1))

    model = Squares()
    with pytest.raises(NetsightError, match="not the first operation"):
        input_invariance([METHOD_CLASSES["gradient"](model)], torch.rand(2, 1, 8, 8), [0, 1], -1.0)
    with pytest.raises(NetsightError, match="non-zero"):
        input_invariance([METHOD_CLASSES["gradient"](model)], torch.rand(2, 1, 8, 8), [0, 1], 0.0)


def test_clopper_pearson_is_the_exact_interval():
    assert clopper_pearson(0, 8) == pytest.approx((0.0, 0.3694), abs=1e-4)
    assert clopper_pearson(8, 8)[1] == 1.0
    lo, hi = clopper_pearson(3, 10)
    assert 0.06 < lo < 0.07 and 0.65 < hi < 0.66


def test_inspect_writes_the_figure_and_the_verdicts(tiny_runs, tmp_path):
    run = tiny_runs.copy("lenet5", tmp_path / "run")
    code = main(["inspect", str(run), "--input-invariance", "--count", "3", "--methods", "gradient,gradient_x_input"])
    assert code == 0
    assert (run / "figures/input_invariance.png").stat().st_size > 10_000
    rows = {r["method"]: r for r in read_csv(run / "tables/verdicts_input_invariance.csv")}
    assert rows["gradient"]["verdict"] == "yes" and rows["gradient_x_input"]["verdict"] == "no"
    assert rows["gradient"]["test"] == "input invariant" and float(rows["gradient"]["threshold"]) == TOLERANCE
    assert 0 <= float(rows["gradient"]["lo"]) <= float(rows["gradient"]["hi"]) <= 1
    values = read_csv(run / "tables/input_invariance.csv")
    assert len(values) == 6 and {r["image"] for r in values} == {r["image"] for r in values[:3]}


def test_a_zero_shift_is_refused_before_anything_is_written(tiny_runs, tmp_path, capsys):
    run = tiny_runs.copy("lenet5", tmp_path / "run")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert main(["inspect", str(run), "--input-invariance", "--input-shift", "0"]) == 2
    assert "--input-shift" in capsys.readouterr().err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_the_report_gives_one_line_per_method_and_none_in_quick_mode(tiny_runs, tmp_path):
    from types import SimpleNamespace

    from netsight.fileio import write_json
    from netsight.techniques.inspection import ran
    from netsight.techniques.registry import get

    run = tiny_runs.copy("lenet5", tmp_path / "OUT/runs/cifar/lenet5")
    assert main(["inspect", str(run), "--input-invariance", "--count", "2", "--methods", "gradient,integrated_gradients"]) == 0
    technique, record = get("input_invariance"), ran(run)["input_invariance"]
    items = technique.report(SimpleNamespace(path=run), "LeNet5", record)
    assert [i.kind for i in items] == ["figure", "p", "p"]
    assert items[1].text.startswith("Gradient: input invariant") and "not input invariant" in items[2].text
    write_json(tmp_path / "OUT/suite.json", {"quick": True})
    items = technique.report(SimpleNamespace(path=run), "LeNet5", record)
    assert [i.kind for i in items] == ["figure", "p"] and "no verdicts" in items[1].text
