"""Training throughput: noise2data's loop against a minimal hand-written PyTorch loop.

Both train the same network from the same initial weights with the same batch size, AdamW,
gradient clipping and flow-matching objective (condot path, uniform t, independent coupling).
The hand loop is the limit: index a batch, draw t and noise, form x_t and the target, MSE,
backward, clip, step - nothing else. noise2data's loop also keeps an EMA, sets the learning
rate each step and checks for non-finite gradients each step. Runs alternate (ours, hand, ours,
hand, ...) so slow drifts of the machine hit both; the table gives the median steps/s of
``--repeats`` timed runs of ``--steps`` steps each, after a warm-up run.

    python benchmarks/throughput.py                    # MLP 256x4, batch 512, fp32
    python benchmarks/throughput.py --precision bf16   # autocast on the CPU too
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from noise2data import __version__
from noise2data.data import Standardizer, load_data
from noise2data.models import MLP, MLPConfig
from noise2data.paths import make_path
from noise2data.training import TrainConfig, train


def hand_loop(model: torch.nn.Module, data: torch.Tensor, steps: int, batch: int, lr: float, seed: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        x1 = data[torch.randint(0, len(data), (batch,), generator=g)]
        x0 = torch.randn(x1.shape, generator=g)
        t = torch.rand(batch, generator=g)
        tt = t[:, None]
        loss = (model(tt * x1 + (1 - tt) * x0, t) - (x1 - x0)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return steps / (time.perf_counter() - start)


def ours(model: torch.nn.Module, data: torch.Tensor, steps: int, batch: int, lr: float, seed: int,
         precision: str, compile_: bool) -> float:
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=lr, device="cpu", seed=seed, log_every=steps,
                      checkpoint_every=steps, precision=precision, compile=compile_)
    start = time.perf_counter()
    train(model, make_path("condot"), data, cfg, progress=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/throughput.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data("checkerboard", n=100_000)
    data = Standardizer.fit(data).forward(data)
    torch.manual_seed(0)
    init = MLP(MLPConfig(data_shape=(2,), hidden=args.hidden, depth=args.depth))
    runs: dict[str, list[float]] = {"noise2data": [], "hand loop": []}
    for i in range(args.repeats + 1):  # the first pair warms up caches and the allocator
        a = ours(copy.deepcopy(init), data, args.steps, args.batch_size, 2e-3, i, args.precision, args.compile)
        b = hand_loop(copy.deepcopy(init), data, args.steps, args.batch_size, 2e-3, i)
        if i:
            runs["noise2data"].append(a)
            runs["hand loop"].append(b)
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med["noise2data"] / med["hand loop"]
    print(f"MLP {args.hidden}x{args.depth}, batch {args.batch_size}, {args.precision}"
          f"{' compiled' if args.compile else ''}, {args.threads} threads, {args.repeats} x {args.steps} steps")
    print(f"{'loop':<12} {'median steps/s':>15} {'min':>8} {'max':>8}")
    for k, v in runs.items():
        print(f"{k:<12} {med[k]:15.1f} {min(v):8.1f} {max(v):8.1f}")
    print(f"noise2data / hand loop = {ratio:.3f} (target >= 0.95)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"noise2data": __version__, "torch": torch.__version__,
                                          "machine": platform.machine(), "args": vars(args), "runs": runs,
                                          "median": med, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
