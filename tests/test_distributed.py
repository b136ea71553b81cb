"""Data-parallel training with torchrun: 2 CPU processes (gloo on loopback) against 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

FAST = ["--data", "moons", "--batch-size", "64", "--hidden", "32", "--depth", "2", "--n-data", "2000",
        "--checkpoint-every", "15", "--no-progress", "--device", "cpu", "--lr-schedule", "constant"]
# (a constant lr: with cosine, a 15-step run that is extended to 30 on resume would stretch its schedule)


def train(out, steps: int, nproc: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "noise2data", "train", *FAST, "--steps", str(steps), "--out", str(out), *extra]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "noise2data", *cmd[3:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if r.returncode and nproc > 1 and any(m in r.stderr for m in LAUNCH_FAILURES):
        # the launcher could not open its rendezvous port (a machine matter, not a training one): once more
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    return r


LAUNCH_FAILURES = ("EADDRINUSE", "address already in use", "RendezvousConnectionError", "RendezvousTimeoutError")


def weights(out, step: int, group: str = "model") -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoints" / f"step_{step:08d}" / f"{group}.safetensors"))


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=0), (k, (a[k] - b[k]).abs().max())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "one"
    r = train(out, 30, 1)
    assert r.returncode == 0, r.stderr
    return out


def test_two_processes_compute_what_one_does(single, tmp_path):
    r = train(tmp_path / "two", 30, 2)
    assert r.returncode == 0, r.stderr
    assert "2 processes of 32" in r.stderr
    for group in ("model", "ema"):
        assert_close(weights(single, 30, group), weights(tmp_path / "two", 30, group), atol=1e-6)
    # only rank 0 wrote: one log line per log step, one checkpoint per checkpoint step
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step_00000015", "step_00000030"]


def test_ot_coupling_on_two_processes_equals_one(tmp_path):
    """The coupling is solved on the global batch every rank draws, so minibatch OT (here in blocks: a
    batch of 300 splits) gives the same weights on 1 and 2 processes."""
    extra = ("--coupling", "ot-blocks", "--batch-size", "300")
    outs = []
    for nproc in (1, 2):
        outs.append(tmp_path / f"p{nproc}")
        r = train(outs[-1], 15, nproc, *extra)
        assert r.returncode == 0, r.stderr
    assert_close(weights(outs[0], 15), weights(outs[1], 15), atol=1e-6)


def test_meanflow_on_two_processes_equals_one(tmp_path):
    """MeanFlow's target (a JVP of the unwrapped network, no gradient) is computed per rank on its slice;
    the gradient of the loss is synchronised by DDP as for flow matching."""
    outs = []
    for nproc in (1, 2):
        outs.append(tmp_path / f"p{nproc}")
        r = train(outs[-1], 15, nproc, "--objective", "meanflow", "--mf-ratio", "0.5")
        assert r.returncode == 0, r.stderr
    assert_close(weights(outs[0], 15), weights(outs[1], 15), atol=1e-5)


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_a_run_resumes_with_another_number_of_processes(single, tmp_path, first, then):
    out = tmp_path / "run"
    r = train(out, 15, first)
    assert r.returncode == 0, r.stderr
    r = train(out, 30, then, "--resume")
    assert r.returncode == 0, r.stderr
    assert_close(weights(single, 30), weights(out, 30), atol=1e-6)


def test_a_batch_that_does_not_split_stops_every_process_with_one_line(tmp_path):
    r = train(tmp_path / "odd", 10, 2, "--batch-size", "63")
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("noise2data: error:")]
    assert lines and "does not split over 2 processes" in lines[0]
    assert not (tmp_path / "odd" / "checkpoints").exists()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_compute_what_one_process_does(single, tmp_path):
    """Two torchrun nodes on this machine (one process each, c10d rendezvous on 127.0.0.1), as a
    two-machine run would start, end where one process does."""
    out = tmp_path / "nodes"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(2):  # the rendezvous port can be taken between choosing and binding it: once more
        port = free_port()
        procs = [subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
             f"--node_rank={rank}", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}",
             "--rdzv_id=n2d-test", f"--rdzv_conf=is_host={int(rank == 0)}", "-m", "noise2data", "train", *FAST,
             "--steps", "30", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for rank in (0, 1)]
        results = [p.communicate(timeout=300) for p in procs]
        codes = [p.returncode for p in procs]
        if not any(codes) or not any(m in err for _, err in results for m in LAUNCH_FAILURES) or attempt:
            break
    assert codes == [0, 0], "\n".join(err[-2000:] for _, err in results)
    assert any("2 processes of 32" in err for _, err in results)
    for group in ("model", "ema"):
        assert_close(weights(single, 30, group), weights(out, 30, group), atol=1e-6)


def test_molecule_training_on_two_processes_equals_one(tmp_path):
    """Molecules under torchrun: size-banded batches, noise aligned to each molecule, self-conditioning's coin
    and the per-atom loss are all drawn or solved on the global batch, so 1 and 2 processes end at the same
    weights."""
    from noise2data.molecules.build import build_conformers

    data, _ = build_conformers(["C", "CC", "CO", "C=O", "CN", "CCO", "CC=O", "C#N", "CCN", "OCO"] * 2, seed=0,
                               workers=1)
    npz = data.save(tmp_path / "mols.npz")
    flags = ["--data", f"molecules:{npz}", "--batch-size", "8", "--size-bands", "3", "--coupling", "ot",
             "--objective", "data", "--time-dist", "beta:2,1", "--checkpoint-every", "10", "--no-progress",
             "--self-condition", "--device", "cpu", "--lr-schedule", "constant", "--steps", "10"]
    outs = []
    for nproc in (1, 2):
        outs.append(tmp_path / f"p{nproc}")
        cmd = [sys.executable, "-m", "noise2data", "train", *flags, "--out", str(outs[-1])]
        if nproc > 1:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                   "noise2data", "train", *flags, "--out", str(outs[-1])]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        if r.returncode and nproc > 1 and any(m in r.stderr for m in LAUNCH_FAILURES):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr
    assert "2 processes of 4" in r.stderr
    assert_close(weights(outs[0], 10), weights(outs[1], 10), atol=1e-5)


def test_a_time_budget_ends_every_process_at_the_same_step(tmp_path):
    # each rank reads its own clock; they must agree on the learning rate and the last step, or the gradient
    # all-reduce of the step one of them skips never completes
    out = tmp_path / "timed"
    r = train(out, 10**6, 2, "--minutes", "0.05")
    assert r.returncode == 0, r.stderr[-2000:]
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert 1 < last < 10**6 and (out / "checkpoints" / f"step_{last:08d}").is_dir()
    assert "min of training" in r.stderr
