"""The fleet trainer: K runs of one architecture trained together as one batched program.

The runs of a fleet share model, data, batch size, iteration count, evaluation interval,
optimiser and (for cnn-bn) dropout; they differ in seed, initialisation, learning rate, training
labels (true or permuted) and snapshots. Each member is exactly the single run of its configuration where it can be:

- it is initialised by the same two calls as a single run (`torch.manual_seed(seed)`, then
  `build_model`), so its starting weights are bit-identical;
- it draws its batches from its own `BatchSampler(seed)`: the same batches, in the same order;
- the optimiser runs over the stacked tensors: Adam and SGD are elementwise, so this is
  exactly per-run Adam/SGD (one shared step count, which every member has anyway); where the
  members' learning rates differ, the step is taken with lr 1 and each member's update is then
  scaled by its own lr (both optimisers' updates are proportional to lr);
- the loss is the sum of the members' mean losses, so member k's gradient is its own loss's.

What differs: the arithmetic (a grouped convolution or a batched product sums in another order,
so values agree to float rounding, not bit for bit) and dropout's random masks (one generator
for the fleet). The tests bound the first and measure both over full protocols.

Every member writes the ordinary run directory (config.json, metrics.csv, model.safetensors
loadable by the ordinary model, summary.json with `fleet: {members, index}`, curves.png), and
its checkpoint.pt holds its own part of the state in the single-run format. A member that
diverges stops (its summary says so) while the others go on; Ctrl-C checkpoints every member,
and resuming the fleet continues each to the metrics an uninterrupted fleet gives.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..data import Dataset, load_dataset
from ..errors import NetsightError
from ..fileio import read_json
from ..models import ModelConfig, build_model, count_parameters
from ..models.fleet_modules import member_state, member_tensor, stack_models
from .config import TrainConfig, training_labels
from .loop import (
    CHECKPOINT_SECONDS,
    BatchSampler,
    device_name,
    eval_batch,
    make_optimizer,
    prepare_run_dir,
    resolve_device,
    versions,
)
from .rundir import load_checkpoint
from .steps import (
    CheckpointClock,
    Interval,
    RunRecord,
    divergence,
    is_evaluation_point,
    progress_bar,
    restore_rng,
    stop_on_sigint,
    summaries_on_crash,
    train_eval_subset,
)

# Fields that must be equal within a fleet (shapes, schedule, optimiser); seed, init, lr and
# snapshots may differ.
# mask: the members of a fleet share one dataset, so only runs on the same masked images train together
FLEET_FIELDS = ("model", "data", "iterations", "batch_size", "optimizer", "eval_every", "hidden", "dropout", "mask")


def fleet_key(config: TrainConfig) -> tuple:
    return tuple(getattr(config, f) for f in FLEET_FIELDS)


class _Member(RunRecord):
    """One run inside a fleet: its run directory (rows, checkpoint, summary) and its place in the fleet."""

    def __init__(self, config: TrainConfig, out: Path, index: int):
        super().__init__(config, out)
        self.index = index


def train_fleet(
    configs: Sequence[TrainConfig],
    outs: Sequence[str | Path],
    *,
    device: str = "auto",
    dataset: Optional[Dataset] = None,
    data_root: Optional[str | Path] = None,
    download: bool = False,
    resume: bool = False,
    progress: bool = True,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    on_checkpoint: Optional[Callable[[], None]] = None,
) -> list[dict[str, Any]]:
    """Train `configs[i]` into `outs[i]`, all together; returns the members' summaries.
    Checkpoints as `train` does (`checkpoint_seconds`, `on_checkpoint`)."""
    if len(configs) != len(outs) or not configs:
        raise NetsightError("fleet: give one output folder per config (and at least one)")
    keys = {fleet_key(c) for c in configs}
    if len(keys) != 1:
        raise NetsightError(f"fleet: members must share {', '.join(FLEET_FIELDS)}")
    if len({str(Path(o).resolve()) for o in outs}) != len(outs):
        raise NetsightError("fleet: two members share an output folder")
    dev = resolve_device(device)
    members = [_Member(c, Path(o), i) for i, (c, o) in enumerate(zip(configs, outs, strict=True))]
    finished: dict[int, dict] = {}
    for m in members:
        done = prepare_run_dir(m.dir, m.config, resume)
        if done is not None:
            finished[m.index] = done
    active = [m for m in members if m.index not in finished]
    if not active:
        return [finished[m.index] for m in members]

    config = active[0].config
    if dataset is None:
        dataset = load_dataset(config.data, data_root, download)
    elif dataset.name != config.data:
        raise NetsightError(f"dataset {dataset.name!r} given for runs configured with data {config.data!r}")
    data = dataset.to(dev)

    models, samplers = [], []
    for m in active:
        mc = ModelConfig(m.config.model, data.image_shape, data.num_classes, m.config.hidden, m.config.dropout, m.config.init)
        m.model_config = mc
        torch.manual_seed(m.config.seed)  # exactly the single run's two calls: the same initial weights
        models.append(build_model(mc))
        samplers.append(BatchSampler(len(data.train_images), m.config.batch_size, m.config.seed, dev))
    template = {k: v.clone() for k, v in models[0].state_dict().items()}
    param_names = [n for n, _ in models[0].named_parameters()]
    parameters = count_parameters(models[0])
    k_all = len(active)

    # resume: every member continues from its own checkpoint; they must stand at the same iteration
    states, starts = [], []
    for m, sampler in zip(active, samplers, strict=True):
        start = 0
        if resume and m.dir.checkpoint.exists():
            with load_checkpoint(m.dir.checkpoint, dev) as state:
                start = m.resume(state, sampler)
                states.append(state)
        starts.append(start)
    if states and len(states) != len(active):
        raise NetsightError("fleet: some members have a checkpoint and others do not; resume them as separate fleets")
    if len(set(starts)) != 1:
        raise NetsightError("fleet: members stand at different iterations; resume them as separate fleets")
    if states:
        for model, state in zip(models, states, strict=True):
            model.load_state_dict(state["model"])

    fleet = stack_models(models).to(dev)
    fleet.train()
    lrs = [m.config.lr for m in active]
    mixed_lr = len(set(lrs)) > 1
    optimizer = make_optimizer(replace(config, lr=1.0) if mixed_lr else config, fleet.parameters())
    step = _scaled_step(optimizer, fleet, torch.tensor(lrs, device=dev)) if mixed_lr else optimizer.step
    interval = Interval((k_all,), dev)  # each member's training loss and accuracy since the last evaluation
    if states:
        _load_optimizer(optimizer, fleet, [s["optimizer"] for s in states], param_names)
        if mixed_lr:
            for group in optimizer.param_groups:
                group["lr"] = 1.0
        restore_rng(states[0], dev)
        interval.load([s["interval"] for s in states])
    else:
        torch.manual_seed(active[0].config.seed)  # the fleet's one dropout generator
    del models, states

    info_common = {"data_source": dataset.source, "device": device_name(dev), "versions": versions()}
    for m in active:
        m.begin(
            {
                "model": m.model_config.to_dict(),
                **info_common,
                "parameters": parameters,
                "fleet": {"members": len(members), "index": m.index},
            }
        )

    iteration = starts[0]
    alive = torch.ones(k_all, dtype=torch.bool, device=dev)
    seconds = active[0].seconds

    def save_checkpoints() -> None:
        opt_states = _split_optimizer(optimizer, fleet, param_names, template, k_all, lrs)
        for i, m in enumerate(active):
            if m.status == "running":
                model_state = member_state(fleet, template, k_all, i)
                m.save_checkpoint(iteration, model_state, opt_states[i], samplers[i].state(), interval.state(i), dev)

    bar = progress_bar(config.iterations, iteration, f"fleet of {k_all} {config.model}", progress)
    checkpoints = CheckpointClock(checkpoint_seconds, on_checkpoint)
    snapshots = {m.index: set(m.config.snapshots) for m in active}
    status = "completed"
    tick = time.perf_counter()
    images = data.train_images
    # each member's own training labels (permuted ones differ by seed), [K, N]: row k is member k's
    labels = torch.stack([training_labels(m.config, data.train_labels) for m in active])
    subset = train_eval_subset(len(images), dev)  # the train accuracy the gap reads, in eval mode (as train())
    subset_images, subset_labels = images[subset], labels[:, subset]
    try:
        with summaries_on_crash(active, lambda: iteration), stop_on_sigint() as sigint:
            while iteration < config.iterations:
                if sigint["stop"]:
                    status = "interrupted"
                    break
                idx = torch.stack([s.next() for s in samplers])  # [K, B]: each member its own batch
                x, y = Dataset.normalise(images[idx]), labels.gather(1, idx)
                logits = fleet(x)  # [K, B, classes]
                losses = (
                    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(y.shape).mean(1)
                )
                total = torch.where(alive, losses, torch.zeros_like(losses)).sum()  # a diverged member adds nothing
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                step()
                iteration += 1
                interval.add(losses.detach(), (logits.detach().argmax(2) == y).sum(1))
                for i, m in enumerate(active):
                    if iteration in snapshots[m.index] and m.status == "running":
                        m.save_weights(_member_model(fleet, template, m, k_all, i), snapshot=iteration)
                bar.update(1)
                if not is_evaluation_point(iteration, config):
                    continue
                seconds += time.perf_counter() - tick
                test_loss, test_acc = evaluate_fleet(fleet, data.test_images, data.test_labels)
                train_eval = evaluate_fleet(fleet, subset_images, subset_labels)
                table = interval.values(test_loss, test_acc, batch_size=y.shape[1], train_eval=train_eval)  # a row per member
                for i, m in enumerate(active):
                    if m.status != "running":
                        continue
                    m.add_row(iteration, table[i], seconds)
                    message = divergence(table[i], iteration, interval.count, m.config.lr)
                    if message:  # this member stops; the others go on
                        alive[i] = False
                        m.finish("diverged", iteration, message)
                interval.reset()
                bar.set_postfix(alive=int(alive.sum()))
                if not bool(alive.any()):
                    break
                if checkpoints.due(iteration, config.iterations):
                    save_checkpoints()
                    for m in active:
                        if m.status == "running":
                            m.summary("running", iteration)
                    checkpoints.done()
                tick = time.perf_counter()
    finally:
        bar.close()

    results = {}
    if status == "interrupted":
        seconds += time.perf_counter() - tick
        for m in active:
            m.seconds = seconds if m.status == "running" else m.seconds
        save_checkpoints()
    for i, m in enumerate(active):
        if m.status == "diverged":
            results[m.index] = read_json(m.dir.summary)
        else:
            final = _member_model(fleet, template, m, k_all, i) if status == "completed" else None
            results[m.index] = m.finish(status, iteration, model=final)
    return [finished.get(m.index) or results[m.index] for m in members]


def _member_model(fleet, template, m: _Member, k: int, i: int):
    with torch.random.fork_rng(devices=[]):  # building a model draws random numbers: keep dropout's stream untouched
        model = build_model(m.model_config)
    model.load_state_dict(member_state(fleet, template, k, i))
    return model


@torch.inference_mode()
def evaluate_fleet(
    fleet, images: torch.Tensor, labels: torch.Tensor, batch: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's mean loss and accuracy over a whole set in eval mode: two [K] device tensors.
    `labels`: [N], the same for every member, or [K, N], each member's own (permuted labels differ by seed)."""
    batch = batch or eval_batch(images.device)
    was_training = fleet.training
    fleet.eval()
    k = fleet.k
    loss_sum = torch.zeros(k, device=images.device)
    correct = torch.zeros(k, device=images.device, dtype=torch.long)
    for start in range(0, len(images), batch):
        x = Dataset.normalise(images[start : start + batch])
        y = labels[..., start : start + batch]
        logits = fleet(x.unsqueeze(0).expand(k, *x.shape))
        y_all = y.expand(k, -1).reshape(-1)
        loss_sum += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y_all, reduction="none").view(k, -1).sum(1)
        correct += (logits.argmax(2) == y).sum(1)
    fleet.train(was_training)
    return loss_sum / len(images), correct.float() / len(images)


def _scaled_step(optimizer, fleet, lrs: torch.Tensor):
    """An optimiser step with a learning rate per member: step with lr 1, then scale each
    member's block of every update by its lr. Adam's and SGD's updates are lr times a term
    that does not depend on lr, so this is that optimiser with each member's own lr."""
    params = [p for p in fleet.parameters()]
    k = len(lrs)

    @torch.no_grad()
    def step() -> None:
        before = [p.detach().clone() for p in params]
        optimizer.step()
        for p, b in zip(params, before, strict=True):
            p.view(k, -1).copy_(torch.addcmul(b.view(k, -1), p.view(k, -1) - b.view(k, -1), lrs[:, None]))

    return step


def _split_optimizer(optimizer, fleet, param_names: list[str], template: dict, k: int, lrs: list[float]) -> list[dict]:
    """Each member's optimiser state dict, in the single-run format (params numbered in order)."""
    full = optimizer.state_dict()
    fleet_params = dict(fleet.named_parameters())
    index = {id(p): i for i, p in enumerate(optimizer.param_groups[0]["params"])}
    out = []
    for member in range(k):
        state = {}
        for j, name in enumerate(param_names):
            s = full["state"].get(index[id(fleet_params[name])])
            if s is None:
                continue
            like = template[name]
            state[j] = {
                key: (
                    member_tensor(v, like, k, member)
                    if torch.is_tensor(v) and v.numel() > 1
                    else (v.clone() if torch.is_tensor(v) else v)
                )
                for key, v in s.items()
            }
        groups = [{**g, "lr": lrs[member], "params": list(range(len(param_names)))} for g in full["param_groups"]]
        out.append({"state": state, "param_groups": groups})
    return out


def _load_optimizer(optimizer, fleet, member_states: list[dict], param_names: list[str]) -> None:
    """The fleet optimiser's state from the members' (the inverse of _split_optimizer)."""
    fleet_params = dict(fleet.named_parameters())
    order = [id(p) for p in optimizer.param_groups[0]["params"]]
    state = {}
    for j, name in enumerate(param_names):
        per = [s["state"].get(j) for s in member_states]
        if any(p is None for p in per):
            continue
        target = fleet_params[name]
        entry = {}
        for key, v in per[0].items():
            if torch.is_tensor(v) and v.numel() > 1:
                entry[key] = torch.cat([p[key].reshape(1, *v.shape) for p in per]).reshape(target.shape)
            else:
                entry[key] = v
        state[order.index(id(target))] = entry
    optimizer.load_state_dict(
        {"state": state, "param_groups": [{**g, "params": list(range(len(order)))} for g in member_states[0]["param_groups"]]}
    )


__all__ = ["train_fleet", "fleet_key", "evaluate_fleet", "FLEET_FIELDS"]
