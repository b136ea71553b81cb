"""A run killed with SIGKILL mid-training resumes to exactly the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

ARGS = ["--data", "moons", "--steps", "400", "--batch-size", "64", "--hidden", "32", "--depth", "2",
        "--n-data", "2000", "--checkpoint-every", "20", "--keep", "2", "--no-progress", "--device", "cpu"]


def cmd(out, *extra: str) -> list[str]:
    return [sys.executable, "-m", "noise2data", "train", *ARGS, "--out", str(out), *extra]


def final_weights(out) -> dict[str, torch.Tensor]:
    step = out / "checkpoints" / "step_00000400"
    return {g: load_file(str(step / f"{g}.safetensors")) for g in ("model", "ema", "optimizer")}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    assert subprocess.run(cmd(straight), env=env, capture_output=True, timeout=300).returncode == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "checkpoints" / "step_00000100").exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    done = sorted(p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert "step_00000400" not in done

    r = subprocess.run(cmd(killed, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = final_weights(straight), final_weights(killed)
    for group in a:
        for k in a[group]:
            assert torch.equal(a[group][k], b[group][k]), (group, k)
    # the loss curve has each logged step once, in order
    import json

    steps = [json.loads(ln)["step"] for ln in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 400
