"""The CUDA path, checked in one short run on a GPU machine (prints a report and writes cuda.json).

Parts (each runs even if an earlier one failed; a failure is reported with its one-line cause):
  speed    every U-Net and DiT preset: one training step at batch 64 (28x28) and peak GPU memory
  mnist    benchmarks/mnist.py on the GPU for --mnist-minutes (needs --mnist DIR)
  mlp      checkerboard MLP with fp32, bf16, fp16 autocast and torch.compile: steps/s and quality
  resume   a run stopped and resumed on CUDA ends with the same weights as one that never stopped
  nccl     torchrun with the NCCL backend (one process)
  egnn     molecules on CUDA: EGNN equivariance in float64, training and sampling (needs --molecules)

    python benchmarks/cuda_check.py --out OUT --mnist DIR --molecules FILE.npz
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from noise2data.cli import main as cli

HERE = Path(__file__).parent


def median_rate(run: Path) -> float:
    rates = [json.loads(ln).get("steps_per_sec") for ln in (run / "metrics.jsonl").read_text().splitlines()]
    rates = sorted(r for r in rates if r)
    return rates[len(rates) // 2]


def part_speed(a: argparse.Namespace, tmp: Path) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "mnist.py"), "--speed", "--device", a.device, "--timed-steps",
                          "20", "--out", str(a.out / "speed")], capture_output=True, text=True, timeout=300)
    print(out.stdout[-3000:], out.stderr[-1500:])
    return json.loads((a.out / "speed" / "speed.json").read_text())


def part_mnist(a: argparse.Namespace, tmp: Path) -> dict:
    cmd = [sys.executable, str(HERE / "mnist.py"), "--mnist", a.mnist, "--minutes", str(a.mnist_minutes), "--preset",
           "small", "--batch-size", "128", "--lr", "1e-3", "--device", a.device, "--out", str(a.mnist_out),
           "--threads", str(min(os.cpu_count() or 2, 16))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    print(out.stdout[-4000:], out.stderr[-2000:])
    return json.loads((a.mnist_out / "mnist.json").read_text())


def part_mlp(a: argparse.Namespace, tmp: Path) -> dict:
    from noise2data.evaluation import evaluate_run
    from noise2data.run import load_run

    res = {}
    for name, extra in [("fp32", []), ("bf16", ["--precision", "bf16"]), ("fp16", ["--precision", "fp16"]),
                        ("compile", ["--compile"])]:
        run = tmp / f"cb_{name}"
        t0 = time.perf_counter()
        assert cli(["train", "--data", "checkerboard", "--steps", str(a.mlp_steps), "--device", a.device,
                    "--no-progress", "--out", str(run), *extra]) == 0
        secs = time.perf_counter() - t0
        ev = evaluate_run(load_run(run, device=a.device), n=4000, metrics=["sw2", "mmd"], solver="midpoint", steps=16)
        res[name] = {"steps_per_sec": median_rate(run), "wall_s": secs,
                     **{k: {"value": v["value"], "floor": v["floor"]} for k, v in ev["metrics"].items()}}
        print(name, res[name], flush=True)
    return res


def part_resume(a: argparse.Namespace, tmp: Path) -> dict:
    from noise2data.training.checkpoint import latest_checkpoint, load_checkpoint

    base = ["train", "--data", "moons", "--device", a.device, "--no-progress", "--checkpoint-every", "100",
            "--batch-size", "256"]
    assert cli([*base, "--steps", "200", "--out", str(tmp / "straight")]) == 0
    assert cli([*base, "--steps", "200", "--out", str(tmp / "stopped")]) == 0  # same seed: a reference pair
    # stop at 100: delete the last checkpoint, resume from the one at step 100
    import shutil

    shutil.rmtree(latest_checkpoint(tmp / "stopped"))
    assert cli(["train", "--out", str(tmp / "stopped"), "--resume", "--no-progress", "--device", a.device]) == 0
    w1 = load_checkpoint(latest_checkpoint(tmp / "straight"), ("model",))[0]["model"]
    w2 = load_checkpoint(latest_checkpoint(tmp / "stopped"), ("model",))[0]["model"]
    diff = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    return {"max_abs_weight_diff": diff, "bit_exact": diff == 0.0}


def part_nccl(a: argparse.Namespace, tmp: Path) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "noise2data", "train",
           "--data", "checkerboard", "--steps", "300", "--device", "cuda", "--no-progress", "--out", str(tmp / "ddp")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    print(out.stderr[-1500:])
    return {"returncode": out.returncode, "last_line": (out.stderr.strip().splitlines() or [""])[-1]}


def part_egnn(a: argparse.Namespace, tmp: Path) -> dict:
    from noise2data.molecules.data import read_xyz
    from noise2data.molecules.egnn import EGNN, EGNNConfig
    from noise2data.molecules.space import sample_prior

    dev = a.device
    torch.manual_seed(0)
    m = EGNN(EGNNConfig(max_atoms=12, hidden=64, layers=4)).double().to(dev)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    mask = torch.ones(4, 12, dtype=torch.bool, device=dev)
    mask[1, 8:] = False
    x, t = sample_prior(mask.cpu(), dtype=torch.float64).to(dev), torch.rand(4, dtype=torch.float64, device=dev)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, device=dev))
    xr = x.clone()
    xr[..., :3] = (x[..., :3] @ q.T + 1.5) * mask[..., None]
    with torch.no_grad():
        out, outr = m(x, t, mask), m(xr, t, mask)
    err = float(torch.cat([(outr[..., :3] - out[..., :3] @ q.T).flatten(), (outr[..., 3:] - out[..., 3:]).flatten()])
                .abs().max())
    run = tmp / "egnn"
    t0 = time.perf_counter()
    assert cli(["train", "--data", f"molecules:{a.molecules}", "--model", "egnn", "--preset", "small", "--steps",
                str(a.egnn_steps), "--batch-size", "64", "--device", dev, "--no-progress", "--out", str(run)]) == 0
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert cli(["sample", str(run), "--n", str(a.egnn_samples), "--steps", "50", "--device", dev, "--out",
                str(tmp / "m.xyz")]) == 0
    mols = read_xyz(tmp / "m.xyz")
    com = max(float(p.mean(0).abs().max()) for p, _ in mols)
    return {"equivariance_err_f64": err, "train_steps_per_sec": median_rate(run), "train_s": train_s,
            "samples": a.egnn_samples, "sample_s": time.perf_counter() - t0, "max_abs_centre_of_mass": com}


PARTS = {"speed": part_speed, "mnist": part_mnist, "mlp": part_mlp, "resume": part_resume, "nccl": part_nccl,
         "egnn": part_egnn}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--mnist")
    p.add_argument("--mnist-out", type=Path, help="folder for the MNIST run (an extractor.safetensors in it is reused)")
    p.add_argument("--mnist-minutes", type=float, default=2.5)
    p.add_argument("--molecules")
    p.add_argument("--mlp-steps", type=int, default=3000)
    p.add_argument("--egnn-steps", type=int, default=1000)
    p.add_argument("--egnn-samples", type=int, default=500)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    a.mnist_out = a.mnist_out or a.out / "mnist"
    tmp = Path("/tmp/n2d_cuda")
    tmp.mkdir(parents=True, exist_ok=True)
    info = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    report = {"info": info}
    print(info, flush=True)
    for name in a.parts.split(","):
        t0 = time.perf_counter()
        try:
            report[name] = {"result": PARTS[name](a, tmp), "seconds": time.perf_counter() - t0}
        except Exception as exc:  # report and go on: one broken part must not hide the others
            traceback.print_exc()
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0}
        print(f"== {name}: {json.dumps(report[name])[:1500]}", flush=True)
        (a.out / "cuda.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
