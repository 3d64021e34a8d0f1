"""The report's first screen: headline sentences generated from the numbers, each reading the interval over
seeds it speaks of; a comparison whose intervals overlap is called unsettled."""

from types import SimpleNamespace

from netsight.report.html import headline_findings, train_test_gap
from netsight.report.study import ConfigGroup


def _run(test: float, train_eval: float, train_mean: float = 0.0):
    row = {"test_acc": test, "train_eval_acc": train_eval, "train_acc_mean": train_mean, "iteration": 10.0}
    summary = {"status": "completed", "final_test_acc": test}
    return SimpleNamespace(metrics=lambda: [row], summary=summary)


def _group(model, data, hidden, pairs):
    return ConfigGroup("g", model, data, hidden, [_run(t, e) for t, e in pairs])


def test_a_clear_difference_is_stated_and_an_overlap_is_unsettled():
    lenet = _group("lenet5", "cifar10-assignment", None, [(0.50, 0.90), (0.51, 0.92), (0.49, 0.91)])
    bn = _group("cnn-bn", "cifar10-assignment", None, [(0.60, 0.66), (0.61, 0.66), (0.59, 0.64)])
    rnns = [
        _group("lstm", "mnist", 128, [(0.98, 0.99), (0.981, 0.99), (0.979, 0.99)]),
        _group("rnn", "mnist", 128, [(0.90, 0.9), (0.91, 0.9), (0.89, 0.9)]),
    ]
    found = headline_findings([bn, lenet, *rnns])
    assert found[0].startswith("lenet5") and found[1].startswith("cnn-bn")  # the assignment's order
    assert "chance is 10%" in found[0]
    assert "LeNet5 overfits more than cnn-bn (the 95% intervals over seeds do not overlap)" in found[2]
    assert "eval-mode train accuracy" in found[2]
    assert "Best recurrent net on MNIST (of 2): lstm-128" in found[3] and "lies above every other" in found[3]

    close = _group("cnn-bn", "cifar10-assignment", None, [(0.50, 0.80), (0.51, 0.95), (0.49, 0.85)])
    said = headline_findings([lenet, close])[2]
    assert "unsettled" in said and "more seeds would settle it" in said and "overfits more than" not in said


def test_one_seed_gives_no_verdict():
    lenet = _group("lenet5", "cifar10-assignment", None, [(0.50, 0.90)])
    bn = _group("cnn-bn", "cifar10-assignment", None, [(0.60, 0.62)])
    found = headline_findings([lenet, bn])
    assert "1 seed, no interval" in found[0] and "unsettled" in found[2]


def test_runs_without_eval_mode_train_accuracy_fall_back_and_say_so():
    old = _group("cnn-bn", "cifar10-assignment", None, [(0.6, float("nan"))])
    old.runs[0].metrics()[0]["train_acc_mean"] = 0.55
    gap, kind = train_test_gap(old)
    assert kind == "interval" and abs(gap.mean - (0.55 - 0.6)) < 1e-12
