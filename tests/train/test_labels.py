"""The permuted-label training option (the data-randomisation test of Adebayo et al. 2018): what it
trains on, and that runs made before it existed keep their config, key and equality."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import pytest
import torch

from netsight.errors import NetsightError
from netsight.fileio import read_json
from netsight.suites.spec import RunSpec, parse_suite, expand
from netsight.train import open_run, resolve, train
from netsight.train.config import TrainConfig, training_labels
from netsight.train.fleet import train_fleet
from tests.conftest import tiny_dataset


def _old_key(config: TrainConfig) -> str:
    """The key as it was computed before the labels option: every other field, hashed the same way (nor the
    later ROAR/KAR mask, absent from a config without one)."""
    d = asdict(config)
    d.pop("labels")
    d.pop("mask")
    d["snapshots"] = list(config.snapshots)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@pytest.mark.parametrize("model, kw", [("lenet5", {}), ("cnn-bn", {"dropout": 0.3}), ("gru", {"hidden": 16})])
def test_default_labels_leave_the_config_file_key_and_equality_unchanged(model, kw):
    c = resolve(model, seed=2, snapshots=[10], **kw)
    assert c.labels == "true" and "labels" not in c.to_dict()
    assert c.key() == _old_key(c)
    old_file = {k: v for k, v in c.to_dict().items()}  # what an older config.json holds
    assert TrainConfig.from_dict(old_file) == c
    p = resolve(model, seed=2, snapshots=[10], labels="permuted", **kw)
    assert p.to_dict()["labels"] == "permuted" and p.key() != c.key() and TrainConfig.from_dict(p.to_dict()) == p
    with pytest.raises(NetsightError, match="--labels 'shuffled': expected true or permuted"):
        resolve(model, labels="shuffled", **kw)


def test_permuted_labels_are_a_seeded_permutation_of_the_training_labels():
    y = torch.arange(100) % 10
    a = training_labels(resolve("lenet5", seed=1, labels="permuted"), y)
    assert torch.equal(torch.bincount(a), torch.bincount(y)) and (a != y).float().mean() > 0.5
    assert torch.equal(a, training_labels(resolve("lenet5", seed=1, labels="permuted"), y))
    assert not torch.equal(a, training_labels(resolve("lenet5", seed=2, labels="permuted"), y))
    assert training_labels(resolve("lenet5", seed=1), y) is y


@pytest.mark.slow  # three tiny runs: ~3 s on an idle 2-core CPU
def test_a_permuted_run_trains_on_them_and_a_fleet_member_equals_its_single_run(tmp_path):
    data = tiny_dataset()
    configs = [
        resolve("gru", "mnist", seed=s, hidden=8, iterations=6, eval_every=3, batch_size=16, labels="permuted") for s in (1, 2)
    ]
    train_fleet(configs, [tmp_path / f"f{c.seed}" for c in configs], dataset=data, progress=False, device="cpu")
    train(configs[1], tmp_path / "single", dataset=data, progress=False, device="cpu")
    assert read_json(tmp_path / "single" / "config.json")["train"]["labels"] == "permuted"
    assert open_run(tmp_path / "single").config == configs[1]
    single, member = open_run(tmp_path / "single").metrics(), open_run(tmp_path / "f2").metrics()
    assert [r["train_loss"] for r in single] == pytest.approx([r["train_loss"] for r in member], abs=1e-5)
    # the eval-mode train accuracy reads each member's own (permuted) labels, as the single run does
    for key in ("train_eval_loss", "train_eval_acc"):
        assert [r[key] for r in single] == pytest.approx([r[key] for r in member], abs=1e-5)
    true = resolve("gru", "mnist", seed=2, hidden=8, iterations=6, eval_every=3, batch_size=16)
    train(true, tmp_path / "true", dataset=data, progress=False, device="cpu")
    # the same weights and batches, other labels: the first batch's loss differs
    assert open_run(tmp_path / "true").metrics()[0]["train_loss"] != pytest.approx(single[0]["train_loss"], abs=1e-6)


def test_a_suite_group_can_train_on_permuted_labels():
    suite = parse_suite('[[group]]\nname = "rand"\nmodels = ["lenet5"]\nlabels = "permuted"\n', "s.toml")
    (spec,) = expand(suite, seeds=1)
    assert isinstance(spec, RunSpec) and spec.config.labels == "permuted" and "-permuted-seed0-" in spec.dirname
    both = parse_suite('[[group]]\nname = "g"\nmodels = ["lenet5"]\nlabels = ["true", "permuted"]\n', "s.toml")
    assert sorted(s.config.labels for s in expand(both, seeds=1)) == ["permuted", "true"]
