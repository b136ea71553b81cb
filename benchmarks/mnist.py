"""Class-conditional MNIST on a CPU budget: FID beside its floor, class accuracy, speed per preset.

1. Trains a class-conditional U-Net (``--preset``, default tiny) on MNIST's 60k training images
   through the CLI (``noise2data train --data mnist:DIR --model unet --cond label``) for about
   ``--minutes`` of wall-clock time (steps = budget / a measured step time).
2. Trains (or reuses) the in-domain FID extractor: noise2data's FeatureNet classifier on the
   training images, validated on the 10k test images.
3. For guidance w in {1, 2, 3} (on t in ``--guidance-interval``, by default the images' [0.3, 1]) and NFE in
   {10, 20} (midpoint), draws ``--per-class`` samples of
   each class and reports FID against the test set beside the floor (the same number of real
   training images against the test set) and the classifier's accuracy on the asked-for labels.
4. Writes a grid (one row per class, w = 2 on the same interval, NFE 20) as PNG.
5. ``--peer``: the same for TorchCFM's conditional-MNIST recipe trained for the same wall clock in the
   peers' environment (``mnist_peer.py``), sampled with the same solver and scored by the same
   extractor; its recipe has no null label, so only w = 1.
6. ``--speed``: one training step (batch 64, 28x28, class-conditional) of every U-Net and DiT
   preset, and of TorchCFM's conditional-MNIST U-Net when torchcfm is importable; each in its
   own process so that its peak resident memory is its own.

    python benchmarks/mnist.py --mnist ../shared/data/mnist --minutes 30 [--peer]
    python benchmarks/mnist.py --speed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from noise2data.cli import main as cli
from noise2data.data.images import load_mnist
from noise2data.errors import UserError
from noise2data.metrics.features import load_extractor, save_extractor, train_feature_net
from noise2data.metrics.fid import image_quality
from noise2data.models import MODELS, build_model
from noise2data.run import load_run

SPEED_MODELS = [("unet", "tiny"), ("unet", "small"), ("unet", "base"), ("dit", "tiny"), ("dit", "small"),
                ("dit", "base")]


def preset_config(name: str, preset: str, shape: tuple[int, ...], num_classes: int) -> dict:
    cfg = MODELS[name][1].preset(preset, shape, num_classes=num_classes)
    return {"name": name, **{k: v for k, v in cfg.to_dict().items() if k != "name"}}


def time_steps(model: torch.nn.Module, batch: int, shape: tuple[int, ...], steps: int, warmup: int = 2,
               device: str = "cpu") -> float:
    """Seconds per training step (flow-matching loss, AdamW) on random data and labels."""
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator(device).manual_seed(0)
    x1 = torch.randn(batch, *shape, generator=g, device=device)
    y = torch.randint(0, 10, (batch,), generator=g, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        t, x0 = torch.rand(batch, generator=g, device=device), torch.randn(x1.shape, generator=g, device=device)
        tt = t.view(-1, 1, 1, 1)
        loss = (model((1 - tt) * x0 + tt * x1, t, y) - (x1 - x0)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def one_speed(spec: str, batch: int, steps: int, device: str = "cpu") -> dict:
    """Time one model in this process; ``spec`` is ``name:preset`` or ``torchcfm``."""
    torch.manual_seed(0)
    shape = (1, 28, 28)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if spec == "torchcfm":  # its conditional-MNIST recipe's network
        from torchcfm.models.unet import UNetModel

        net = UNetModel(dim=shape, num_channels=32, num_res_blocks=1, num_classes=10, class_cond=True)

        class TimeFirst(torch.nn.Module):  # torchcfm's networks take (t, x, y)
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return self.net(t, x, y=y)

        model = TimeFirst()
    else:
        name, preset = spec.split(":")
        try:
            model = build_model(preset_config(name, preset, shape, 10))
        except UserError:  # e.g. 4 U-Net levels need sides divisible by 8: MNIST padded to 32x32
            shape = (1, 32, 32)
            model = build_model(preset_config(name, preset, shape, 10))
    secs = time_steps(model, batch, shape, steps, device=device)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"model": spec, "shape": list(shape), "params": sum(p.numel() for p in model.parameters()),
           "s_per_step": secs, "images_per_s": batch / secs, "peak_rss_mb": rss / 1024,
           "rss_growth_mb": (rss - rss0) / 1024}
    if device.startswith("cuda"):  # the GPU's own peak, which is what limits batch size there
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def speed_table(batch: int, steps: int, threads: int, peers_python: str | None, device: str = "cpu") -> list[dict]:
    rows = []
    jobs = [(sys.executable, f"{n}:{p}") for n, p in SPEED_MODELS]
    if peers_python and Path(peers_python).exists():
        jobs.append((peers_python, "torchcfm"))
    for python, spec in jobs:
        cmd = [python, __file__, "--_one", spec, "--batch", str(batch), "--timed-steps", str(steps),
               "--threads", str(threads), "--device", device]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{spec}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {threads} threads"
    print(f"\none training step, batch {batch}, class-conditional, {where} (median of {steps})")
    mem = "peak GPU MB" if device.startswith("cuda") else "peak RSS MB"
    print(f"{'model':<14} {'image':>8} {'params':>11} {'s/step':>8} {'images/s':>9} {mem:>12} {'vs torchcfm':>12}")
    ref = next((r["s_per_step"] for r in rows if r["model"] == "torchcfm"), None)
    for r in rows:
        ratio = f"{ref / r['s_per_step']:.1f}x" if ref else "-"
        size = "x".join(map(str, r["shape"]))
        print(f"{r['model']:<14} {size:>8} {r['params']:11,d} {r['s_per_step']:8.4f} {r['images_per_s']:9.1f} "
              f"{r.get('peak_gpu_mb', r['peak_rss_mb']):12.0f} {ratio:>12}")
    return rows


def train_model(args: argparse.Namespace, run: Path) -> dict:
    shape = (1, 28, 28)
    model = build_model(preset_config("unet", args.preset, shape, 10))
    step_s = time_steps(model, args.batch_size, shape, 5, device=args.device)
    steps = max(100, int(args.minutes * 60 / step_s))
    print(f"U-Net {args.preset}: {step_s:.3f} s/step at batch {args.batch_size} -> {steps} steps for "
          f"{args.minutes:g} min", file=sys.stderr)
    t0 = time.perf_counter()
    code = cli(["train", "--data", f"mnist:{args.mnist}", "--model", "unet", "--preset", args.preset,
                "--device", args.device,
                "--cond", "label", "--steps", str(steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                "--warmup-steps", "200", "--checkpoint-every", "500", "--out", str(run), "--no-progress"])
    if code:
        raise SystemExit(code)
    secs = time.perf_counter() - t0
    rates = [json.loads(ln).get("steps_per_sec") for ln in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r for r in rates if r]
    sps = sorted(rates)[len(rates) // 2]
    return {"steps": steps, "batch_size": args.batch_size, "train_seconds": secs, "steps_per_s": sps,
            "images_per_s": sps * args.batch_size}


def extractor(args: argparse.Namespace, train, test):  # noqa: ANN001, ANN201
    path = Path(args.out) / "extractor.safetensors"
    if path.exists():
        return load_extractor(path)
    ext = train_feature_net(train, test, epochs=3, seed=0)
    save_extractor(ext, path)
    return ext


def real_floor(ext, train, per_class: int) -> tuple[torch.Tensor, float]:  # noqa: ANN001
    """The floor's reference: ``10 * per_class`` real training images (a fixed draw), and the extractor's
    accuracy on them."""
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(train.images), generator=g)[: 10 * per_class]
    floor = train.images[pick]
    return floor, float((ext.predict(floor) == train.labels[pick]).double().mean())


def score(ext, x: torch.Tensor, labels: torch.Tensor, test, floor: tuple[torch.Tensor, float], **extra) -> dict:  # noqa: ANN001
    """FID/KID and class accuracy of ``x: (n, 1, 28, 28)`` in [-1, 1] drawn for ``labels``, beside the floor
    (``real_floor``: real images and the extractor's accuracy on them)."""
    x = ((x.clamp(-1, 1) + 1) / 2 * 255)  # the extractor's units (0..255)
    q = image_quality(ext, x, test.images, floor[0], sample_labels=labels)
    row = {**extra, "fid": q["fid"], "fid_floor": q["fid_floor"], "kid": q["kid"], "kid_floor": q["kid_floor"],
           "class_accuracy": q["class_accuracy"], "real_accuracy": floor[1], "n": len(x)}
    print(f"{extra}: FID {q['fid']:.3f} (floor {q['fid_floor']:.3f}), accuracy {q['class_accuracy']:.4f}",
          file=sys.stderr)
    return row


def guidance_interval(args: argparse.Namespace) -> tuple[float, float]:
    """``--guidance-interval`` as ``(lo, hi)``, by default the images' own."""
    from noise2data.modalities.images import IMAGES

    if not args.guidance_interval:
        return tuple(IMAGES.guidance_interval)
    lo, hi = (float(v) for v in args.guidance_interval.split(","))
    return lo, hi


def evaluate(args: argparse.Namespace, run_dir: Path, ext, test, floor) -> list[dict]:  # noqa: ANN001
    run = load_run(run_dir, device=args.device)
    labels = torch.arange(10).repeat_interleave(args.per_class)
    interval = guidance_interval(args)
    rows = []
    for nfe in (10, 20):
        for w in (1.0, 2.0, 3.0):
            t0 = time.perf_counter()
            x = torch.cat([run.sample(args.per_class, solver="midpoint", steps=nfe // 2, label=k, guidance=w,
                                      guidance_interval=interval, seed=k).x for k in range(10)])
            secs = time.perf_counter() - t0
            rows.append(score(ext, x, labels, test, floor, nfe=nfe, guidance=w, sample_seconds=secs,
                              guidance_interval=list(interval)))
    cli(["sample", str(run_dir), "--grid-per-class", "10", "--guidance", "2", "--solver", "midpoint",
         "--guidance-interval", ",".join(f"{v:g}" for v in interval),
         "--steps", "10", "--device", args.device, "--out", str(Path(args.out) / "mnist_grid.png")])
    return rows


def peer(args: argparse.Namespace, seconds: float, ext, test, floor) -> tuple[dict, list[dict]]:  # noqa: ANN001
    """TorchCFM's recipe trained for ``seconds`` (``mnist_peer.py`` in the peers' Python), scored like ours."""
    out = Path(args.out) / "torchcfm"
    if not (out / "train.json").exists():
        if not Path(args.peers_python).exists():
            raise SystemExit(f"--peer needs TorchCFM: {args.peers_python} not found (run benchmarks/setup_peers.sh)")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        cmd = [args.peers_python, str(Path(__file__).with_name("mnist_peer.py")), "--mnist", args.mnist,
               "--seconds", str(seconds), "--batch-size", str(args.batch_size),
               "--per-class", str(args.per_class), "--threads", str(args.threads), "--out", str(out)]
        if subprocess.run(cmd, env=env).returncode:
            raise SystemExit("the TorchCFM run failed (its output is above)")
    info = json.loads((out / "train.json").read_text())
    rows = []
    for nfe in (10, 20):
        d = np.load(out / f"samples_nfe{nfe}.npz")
        rows.append(score(ext, torch.from_numpy(d["images"]), torch.from_numpy(d["labels"]), test, floor,
                          nfe=nfe, guidance=1.0, sample_seconds=info[f"sample_seconds_nfe{nfe}"]))
    return info, rows


def print_rows(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'NFE':>4} {'w':>4} {'FID':>8} {'floor':>8} {'KID':>9} {'floor':>9} {'class acc':>10} "
          f"{'real acc':>9} {'sample s':>9}")
    for r in rows:
        print(f"{r['nfe']:4d} {r['guidance']:4g} {r['fid']:8.3f} {r['fid_floor']:8.3f} {r['kid']:9.5f} "
              f"{r['kid_floor']:9.5f} {r['class_accuracy']:10.4f} {r['real_accuracy']:9.4f} {r['sample_seconds']:9.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", help="folder of the MNIST IDX files")
    p.add_argument("--minutes", type=float, default=30.0, help="training budget (wall clock)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--per-class", type=int, default=200, help="samples per class and setting")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/mnist")
    p.add_argument("--speed", action="store_true", help="only the per-preset step time and memory table")
    p.add_argument("--batch", type=int, default=64, help="batch for --speed")
    p.add_argument("--timed-steps", type=int, default=5)
    p.add_argument("--peers-python", default="benchmarks/.peers-venv/bin/python",
                   help="a Python with torchcfm, for its U-Net's step time (see setup_peers.sh)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--peer", action="store_true", help="also train and score TorchCFM's recipe on the same budget")
    p.add_argument("--guidance-interval", default=None, help="guide for t in LO,HI (default: the images' default, "
                   "0.3,1; 0,1 guides the whole way, as before 2026-12-08)")
    p.add_argument("--_one", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args._one:
        print(json.dumps(one_speed(args._one, args.batch, args.timed_steps, args.device)))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.speed:
        rows = speed_table(args.batch, args.timed_steps, args.threads, args.peers_python, args.device)
        (out / "speed.json").write_text(json.dumps(rows, indent=2))
        return
    if not args.mnist:
        p.error("--mnist DIR is needed (or --speed)")
    train, test = load_mnist(args.mnist, "train"), load_mnist(args.mnist, "test")
    run_dir = out / "run"
    info_path = out / "train.json"  # what training measured, kept for a rerun that reuses the run
    if not (run_dir / "config.json").exists():
        info_path.write_text(json.dumps(train_model(args, run_dir)))
        (out / "scores.json").unlink(missing_ok=True)  # scores of an earlier run
    info = json.loads(info_path.read_text()) if info_path.exists() else {"steps": "reused"}
    ext = extractor(args, train, test)
    floor = real_floor(ext, train, args.per_class)
    scores = out / "scores.json"  # ours, kept so that a rerun with --peer does not sample them again
    cached = json.loads(scores.read_text()) if scores.exists() else {}
    key = {"per_class": args.per_class, "guidance_interval": list(guidance_interval(args))}
    if {k: cached.get(k) for k in key} == key:
        rows = cached["rows"]
    else:
        rows = evaluate(args, run_dir, ext, test, floor)
        scores.write_text(json.dumps({**key, "rows": rows}))
    seconds = info.get("train_seconds", args.minutes * 60)  # the peer gets the wall clock our run took
    peer_info, peer_rows = peer(args, seconds, ext, test, floor) if args.peer else (None, [])
    print(f"\nextractor validation accuracy {ext.val_accuracy:.4f}; FID/KID vs the 10k test images; floor = "
          f"{10 * args.per_class} real training images vs the test images")
    lo, hi = guidance_interval(args)
    print_rows(f"\nnoise2data class-conditional U-Net ({args.preset}) on MNIST, guidance on t in [{lo:g}, {hi:g}]: "
               f"{info}", rows)
    if peer_info:
        print_rows(f"\nTorchCFM's conditional-MNIST recipe on the same budget: {peer_info}", peer_rows)
    (out / "mnist.json").write_text(json.dumps({"train": info, "preset": args.preset,
                                                "extractor_val_accuracy": ext.val_accuracy, "rows": rows,
                                                "torchcfm": {"train": peer_info, "rows": peer_rows}},
                                               indent=2))
    print(f"\nwrote {out / 'mnist.json'} and {out / 'mnist_grid.png'}")


if __name__ == "__main__":
    main()
