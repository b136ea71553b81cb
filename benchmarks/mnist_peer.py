"""TorchCFM's conditional-MNIST recipe on the same CPU budget as ``mnist.py``, for a quality comparison.

Runs in the peers' virtual environment (``setup_peers.sh``; ``mnist.py --peer`` starts it with
``PYTHONPATH=src`` so noise2data's MNIST reader and ODE solver are importable). The recipe is the one of
TorchCFM's conditional-MNIST example: its guided-diffusion ``UNetModel`` (32 channels, 1 residual block,
class-conditional), ``ConditionalFlowMatcher(sigma=0)``, Adam at its default learning rate, batch 128,
no EMA, no label dropout (so no guidance). It trains for ``--seconds`` of wall clock (``mnist.py`` passes
the time its own run took). Sampling uses noise2data's midpoint solver at NFE 10 and 20 with ``per_class``
samples per class, so the two models are integrated and scored the same way; the samples are written to
``OUT/samples_nfe{N}.npz`` (images in [-1, 1], labels) and scored by ``mnist.py`` with its extractor.

    PYTHONPATH=src benchmarks/.peers-venv/bin/python benchmarks/mnist_peer.py --mnist ../shared/data/mnist \\
        --seconds 1800 --out benchmarks/results/mnist/torchcfm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
from torchcfm.models.unet import UNetModel

from noise2data.data.images import load_mnist
from noise2data.samplers import midpoint, uniform_grid


def recipe_model() -> torch.nn.Module:
    return UNetModel(dim=(1, 28, 28), num_channels=32, num_res_blocks=1, num_classes=10, class_cond=True)


def train(args: argparse.Namespace, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.nn.Module, dict]:
    """``images: (N, 1, 28, 28)`` in [-1, 1], ``labels: (N,)``."""
    torch.manual_seed(0)
    model, fm = recipe_model(), ConditionalFlowMatcher(sigma=0.0)
    opt = torch.optim.Adam(model.parameters())
    g = torch.Generator().manual_seed(0)
    order, pos = torch.randperm(len(images), generator=g), 0

    def step() -> float:
        nonlocal order, pos
        if pos + args.batch_size > len(order):  # drop the last partial batch, reshuffle
            order, pos = torch.randperm(len(images), generator=g), 0
        idx = order[pos: pos + args.batch_size]
        pos += args.batch_size
        x1, y = images[idx], labels[idx]
        t, xt, ut = fm.sample_location_and_conditional_flow(torch.randn_like(x1), x1)
        loss = (model(t, xt, y) - ut).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    t0, steps, losses = time.perf_counter(), 0, []
    while time.perf_counter() - t0 < args.seconds:  # the same wall clock as noise2data's run had
        losses.append(step())
        steps += 1
        if steps % 100 == 0:
            print(f"step {steps}, {time.perf_counter() - t0:.0f} s, loss {np.mean(losses[-100:]):.4f}", flush=True)
    secs = time.perf_counter() - t0
    return model, {"steps": steps, "batch_size": args.batch_size, "train_seconds": secs,
                   "steps_per_s": steps / secs, "images_per_s": steps * args.batch_size / secs,
                   "params": sum(p.numel() for p in model.parameters())}


@torch.no_grad()
def sample(model: torch.nn.Module, nfe: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` samples of each digit with the midpoint rule at ``nfe`` evaluations."""
    model.eval()
    out = []
    for k in range(10):
        g = torch.Generator().manual_seed(k)
        x0 = torch.randn(per_class, 1, 28, 28, generator=g)
        y = torch.full((per_class,), k, dtype=torch.long)
        out.append(midpoint(lambda x, t, y=y: model(t, x, y), x0, uniform_grid(nfe // 2)).x)
    return torch.cat(out).numpy(), np.repeat(np.arange(10), per_class)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", required=True)
    p.add_argument("--seconds", type=float, default=1800.0, help="training wall clock")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/mnist/torchcfm")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(args.mnist, "train")
    images = data.images / 127.5 - 1.0  # (N, 1, 28, 28) in [-1, 1], as the recipe's Normalize((0.5,), (0.5,))
    model, info = train(args, images, data.labels)
    torch.save(model.state_dict(), out / "model.pt")
    for nfe in (10, 20):
        t0 = time.perf_counter()
        x, y = sample(model, nfe, args.per_class)
        info[f"sample_seconds_nfe{nfe}"] = time.perf_counter() - t0
        np.savez_compressed(out / f"samples_nfe{nfe}.npz", images=x, labels=y)
    (out / "train.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
