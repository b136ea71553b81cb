"""The memory probe before the first training step: a linear estimate, a clear error, no side effects."""

from __future__ import annotations

import mmap

import pytest
import torch

import noise2data.training.memory as memory
from noise2data.cli import main
from noise2data.cpu_memory import keep_freed_memory
from noise2data.data import Standardizer, sample_toy
from noise2data.errors import UserError
from noise2data.models import MLP, MLPConfig
from noise2data.paths import make_path
from noise2data.training import TrainConfig, train

CPU = torch.device("cpu")


def _fake_peak(per_sample: int, fixed: int):
    """A step_peak whose step at batch b needs ``fixed + per_sample * b`` bytes; records the batches."""
    seen: list[int] = []
    state = {"b": 0}

    def step(b: int) -> None:
        state["b"] = b
        seen.append(b)

    def peak(run, device):
        run()
        return fixed + per_sample * state["b"]

    return step, peak, seen


def test_the_estimate_extrapolates_linearly_from_two_small_batches(monkeypatch):
    step, peak, seen = _fake_peak(per_sample=1000, fixed=5000)
    monkeypatch.setattr(memory, "step_peak", peak)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**9)
    need = memory.check_step_fits(step, 512, CPU)
    assert seen == [64, 64, 128]  # a warm-up, then batches B/8 and B/4
    assert need == 5000 + 1000 * 512
    # tiny batches: one size, no extrapolation
    step, peak, seen = _fake_peak(per_sample=1000, fixed=5000)
    monkeypatch.setattr(memory, "step_peak", peak)
    assert memory.check_step_fits(step, 1, CPU) == 6000 and seen == [1, 1]


def test_a_step_that_will_not_fit_stops_with_a_batch_that_would(monkeypatch):
    step, peak, seen = _fake_peak(per_sample=2**30, fixed=0)  # 1 GiB per sample
    monkeypatch.setattr(memory, "step_peak", peak)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 20 * 2**30)
    with pytest.raises(UserError, match=r"batch 64 needs about 64\.0 GiB.*20\.0 GiB are available.*about 16 fits"):
        memory.check_step_fits(step, 64, CPU, "the test model")
    assert max(seen) <= 16  # the probes themselves stayed small
    # an estimate just under what is free still stops: the margin covers what the probe does not see
    with pytest.raises(UserError, match="about 16 fits"):
        memory.check_step_fits(step, 18, CPU)
    assert memory.check_step_fits(step, 16, CPU) == 16 * 2**30


def test_when_the_second_probe_would_not_fit_it_is_not_run(monkeypatch):
    step, peak, seen = _fake_peak(per_sample=2**30, fixed=0)
    monkeypatch.setattr(memory, "step_peak", peak)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 3 * 2**30)  # batch 2 fits, 4 would not
    with pytest.raises(UserError, match="lower --batch-size"):
        memory.check_step_fits(step, 16, CPU)
    assert seen == [2, 2]


def test_unknown_memory_or_the_variable_skip_the_check(monkeypatch):
    step, peak, seen = _fake_peak(per_sample=2**40, fixed=0)
    monkeypatch.setattr(memory, "step_peak", peak)
    monkeypatch.setattr(memory, "available_bytes", lambda device: None)
    assert memory.check_step_fits(step, 64, CPU) is None and seen == []
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1)
    monkeypatch.setenv(memory.SKIP_ENV, "1")
    assert memory.check_step_fits(step, 64, CPU) is None and seen == []


@pytest.mark.skipif(memory._linux_peak(lambda: None) is None, reason="needs Linux's resettable peak RSS")
def test_the_linux_peak_sees_a_real_allocation():
    # fresh pages from the kernel: a heap allocation could reuse blocks an earlier test freed but the process
    # kept (resident already, so rightly not counted as new memory)
    def run() -> None:
        size = 64 * 2**20
        with mmap.mmap(-1, size) as m:
            for i in range(0, size, mmap.PAGESIZE):  # touch every page
                m[i] = 1

    assert 60 * 2**20 <= memory._linux_peak(run) <= 200 * 2**20



@pytest.mark.skipif(memory._linux_peak(lambda: None) is None or not keep_freed_memory(),
                    reason="needs Linux's resettable peak RSS and glibc")
def test_blocks_the_allocator_kept_from_a_warm_up_do_not_hide_the_peak():
    # the probe's warm-up step frees its activations; glibc keeps blocks under its mmap threshold resident, and
    # the measured step would reuse them unseen (the video U-Net's estimate was 2x low before the probe
    # returned them to the kernel)
    def step() -> None:
        blocks = [torch.ones(2**18) for _ in range(256)]  # 256 blocks of 1 MiB, each under the threshold
        del blocks

    step()  # the warm-up
    assert memory._linux_peak(step) >= 200 * 2**20

def _setup():
    torch.manual_seed(0)
    data = sample_toy("moons", 2000, torch.Generator().manual_seed(0))
    stats = Standardizer.fit(data)
    return MLP(MLPConfig(data_shape=(2,), hidden=32, depth=2)), stats.forward(data)


def test_the_probe_changes_nothing_in_training(monkeypatch):
    """Same weights with and without the probe: it uses its own generator and leaves no gradient behind."""
    cfg = TrainConfig(steps=30, batch_size=64, log_every=10, device="cpu")
    m1, data = _setup()
    calls = []
    real = memory.check_step_fits
    monkeypatch.setattr("noise2data.training.loop.check_step_fits", lambda *a, **k: calls.append(1) or real(*a, **k))
    train(m1, make_path("condot"), data, cfg, progress=False)
    assert calls == [1]
    monkeypatch.setenv(memory.SKIP_ENV, "1")
    m2, data = _setup()
    train(m2, make_path("condot"), data, cfg, progress=False)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k


def test_train_refuses_a_run_too_large_for_the_machine(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1024)
    monkeypatch.setattr(memory, "step_peak", lambda run, device: run() or 2**20)
    code = main(["train", "--data", "moons", "--steps", "5", "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "needs about" in err[-1] and "lower --batch-size" in err[-1]
    assert not list((tmp_path / "r").glob("checkpoints/*"))  # stopped before any step
