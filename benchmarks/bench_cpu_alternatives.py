"""The CPU speed-ups tried on the study's training step, each timed against netsight's own step.

    python benchmarks/bench_cpu_alternatives.py [--threads 1] [--steps 100] [--no-compile] [--json FILE]

One thread (as the study runs each model), random data of the study's shapes and batch sizes,
Adam; milliseconds per training step (forward, backward, optimiser), best of two rounds:

- CNNs (LeNet5, cnn-bn; batch 50): netsight's step (channels-last, oneDNN) against contiguous
  tensors, and against oneDNN switched off (ATen's im2col + sgemm);
- recurrent nets (GRU, RNN; 32 and 128 units; batch 128): `nn.GRU`/`nn.RNN` against a hand-written
  sequence with its own backward, which computes the weight gradients as one matrix product over
  all 28 steps instead of 28 small ones (checked equal to the module's outputs and gradients in
  float64 first);
- `torch.compile` (inductor; needs a C++ compiler) of the loss of LeNet5 and GRU-128; the compile
  time is left out. Skip with --no-compile.

None beats netsight's step on this project's CPU (docs/performance.md, "The study's run time").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from netsight.models import ModelConfig, build_model
from netsight.train.loop import build_for_training, prepare_input


class GRUSequence(torch.autograd.Function):
    """nn.GRU's maths (gate order r, z, n; both biases; h0 = 0), batch-first, one layer."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        n, steps, inputs = x.shape
        h = w_hh.shape[1]
        gi = torch.addmm(b_ih, x.transpose(0, 1).reshape(steps * n, inputs), w_ih.t()).view(steps, n, 3 * h)
        hs = x.new_zeros(steps + 1, n, h)
        rz, new, ghn = x.new_empty(steps, n, 2 * h), x.new_empty(steps, n, h), x.new_empty(steps, n, h)
        for t in range(steps):
            gh = torch.addmm(b_hh, hs[t], w_hh.t())
            torch.sigmoid(gi[t, :, : 2 * h] + gh[:, : 2 * h], out=rz[t])
            ghn[t].copy_(gh[:, 2 * h :])
            torch.tanh(torch.addcmul(gi[t, :, 2 * h :], rz[t, :, :h], ghn[t]), out=new[t])
            torch.lerp(new[t], hs[t], rz[t, :, h:], out=hs[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, hs, rz, new, ghn)
        return hs[1:].transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_out):
        x, w_ih, w_hh, hs, rz, new, ghn = ctx.saved_tensors
        n, steps, inputs = x.shape
        h = w_hh.shape[1]
        grad_out = grad_out.transpose(0, 1)
        d_pre = x.new_empty(steps, n, 3 * h)  # gradients of the gates' pre-activations (input side)
        d_gh = x.new_empty(steps, n, 3 * h)  # and of the hidden side's products
        dh = torch.zeros_like(hs[0])
        for t in range(steps - 1, -1, -1):
            dh = dh + grad_out[t]
            r, z, nt = rz[t, :, :h], rz[t, :, h:], new[t]
            dn = d_pre[t, :, 2 * h :]
            torch.mul(dh - dh * z, 1 - nt * nt, out=dn)
            torch.mul(dh * (hs[t] - nt), z * (1 - z), out=d_pre[t, :, h : 2 * h])
            torch.mul(dn * ghn[t], r * (1 - r), out=d_pre[t, :, :h])
            d_gh[t, :, : 2 * h] = d_pre[t, :, : 2 * h]
            torch.mul(dn, r, out=d_gh[t, :, 2 * h :])
            dh = torch.addmm(dh * z, d_gh[t], w_hh)
        d_gh, d_pre = d_gh.view(steps * n, 3 * h), d_pre.view(steps * n, 3 * h)
        dw_hh = d_gh.t() @ hs[:-1].reshape(steps * n, h)
        dw_ih = d_pre.t() @ x.transpose(0, 1).reshape(steps * n, inputs)
        dx = (d_pre @ w_ih).view(steps, n, inputs).transpose(0, 1) if ctx.needs_input_grad[0] else None
        return dx, dw_ih, dw_hh, d_pre.sum(0), d_gh.sum(0)


class RNNSequence(torch.autograd.Function):
    """nn.RNN's maths (tanh, both biases; h0 = 0), batch-first, one layer."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        n, steps, inputs = x.shape
        h = w_hh.shape[1]
        gi = torch.addmm(b_ih + b_hh, x.transpose(0, 1).reshape(steps * n, inputs), w_ih.t()).view(steps, n, h)
        hs = x.new_zeros(steps + 1, n, h)
        for t in range(steps):
            torch.tanh(torch.addmm(gi[t], hs[t], w_hh.t()), out=hs[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, hs)
        return hs[1:].transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_out):
        x, w_ih, w_hh, hs = ctx.saved_tensors
        n, steps, inputs = x.shape
        h = w_hh.shape[1]
        grad_out = grad_out.transpose(0, 1)
        d_pre = x.new_empty(steps, n, h)
        dh = torch.zeros_like(hs[0])
        for t in range(steps - 1, -1, -1):
            dh = dh + grad_out[t]
            torch.mul(dh, 1 - hs[t + 1] * hs[t + 1], out=d_pre[t])
            dh = d_pre[t] @ w_hh
        d_pre = d_pre.view(steps * n, h)
        dw_hh = d_pre.t() @ hs[:-1].reshape(steps * n, h)
        dw_ih = d_pre.t() @ x.transpose(0, 1).reshape(steps * n, inputs)
        dx = (d_pre @ w_ih).view(steps, n, inputs).transpose(0, 1) if ctx.needs_input_grad[0] else None
        db = d_pre.sum(0)
        return dx, dw_ih, dw_hh, db, db


SEQUENCES = {"gru": GRUSequence, "rnn": RNNSequence}


def hand_written(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """The row-sequence classifier's forward with its recurrence replaced by the hand-written one."""
    r = model.rnn

    def forward(images: torch.Tensor) -> torch.Tensor:
        out = SEQUENCES[model.cell].apply(model.rows(images), r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0)
        return model.fc(out[:, -1])

    return forward


def check_hand_written(cell: str, hidden: int) -> float:
    """Largest difference to the module (outputs and every parameter's gradient), float64."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell, (1, 28, 28), 10, hidden)).double()
    x = torch.randn(16, 1, 28, 28, dtype=torch.float64)
    results = []
    for forward in (model, hand_written(model)):
        out = forward(x)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
        model.zero_grad(set_to_none=True)
    (out_a, grads_a), (out_b, grads_b) = results
    return max([(out_a - out_b).abs().max().item()] + [(a - b).abs().max().item() for a, b in zip(grads_a, grads_b, strict=True)])


def step_ms(model, forward, batch: int, steps: int) -> float:
    """Best of two rounds, ms per step; inputs laid out as the trainer does for `model` (prepare_input)."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    images, labels = torch.randn(20 * batch, 1, 28, 28), torch.randint(0, 10, (20 * batch,))

    def step(i: int) -> None:
        x = images[(i % 20) * batch : (i % 20 + 1) * batch]
        x = prepare_input(model, x)
        loss = F.cross_entropy(forward(x), labels[(i % 20) * batch : (i % 20 + 1) * batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    best = float("inf")
    for _ in range(2):
        for i in range(max(5, steps // 10)):
            step(i)
        start = time.perf_counter()
        for i in range(steps):
            step(i)
        best = min(best, (time.perf_counter() - start) / steps * 1e3)
    return best


def netsight_model(config: ModelConfig):
    """The model exactly as netsight's trainer builds it (channels-last for the CNNs)."""
    torch.manual_seed(0)
    return build_for_training(config, torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (needs a C++ compiler)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for flag in ("threads", "steps"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}: expected a whole number of at least 1, got {getattr(args, flag)}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), ms per training step (best of 2 x {args.steps})")
    rows = []

    def report(model: str, variant: str, ms: float, baseline: float, note: str = "") -> None:
        rows.append(
            {"model": model, "variant": variant, "ms": ms, "netsight_ms": baseline, "speedup": baseline / ms, "note": note}
        )
        print(f"  {model:10} {variant:48} {ms:8.2f} ms  vs netsight {baseline:8.2f} ms  ({baseline / ms:.2f}x){note}", flush=True)

    for name in ("lenet5", "cnn-bn"):
        config = ModelConfig(name, (1, 28, 28), 10)
        model = netsight_model(config)
        ours = step_ms(model, model, 50, args.steps)
        torch.manual_seed(0)
        model = build_model(config)  # plain contiguous layout
        report(name, "contiguous (not channels-last)", step_ms(model, model, 50, args.steps), ours)
        torch.backends.mkldnn.enabled = False
        try:
            model = netsight_model(config)
            report(name, "oneDNN off (im2col + sgemm)", step_ms(model, model, 50, args.steps), ours)
        finally:
            torch.backends.mkldnn.enabled = True
    for cell in ("gru", "rnn"):
        for hidden in (32, 128):
            model = netsight_model(ModelConfig(cell, (1, 28, 28), 10, hidden))
            ours = step_ms(model, model, 128, args.steps)
            error = check_hand_written(cell, hidden)
            report(
                f"{cell}-{hidden}",
                "hand-written sequence, one weight-grad product",
                step_ms(model, hand_written(model), 128, args.steps),
                ours,
                f"  (float64 difference {error:.1e})",
            )
    if not args.no_compile:
        for name, config, batch in (
            ("lenet5", ModelConfig("lenet5", (1, 28, 28), 10), 50),
            ("gru-128", ModelConfig("gru", (1, 28, 28), 10, 128), 128),
        ):
            model = netsight_model(config)
            ours = step_ms(model, model, batch, args.steps)
            report(name, "torch.compile (inductor)", step_ms(model, torch.compile(model), batch, args.steps), ours)
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
