"""Training: loss goes down, EMA, atomic checkpoints, exact resume, damaged checkpoints, divergence."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from noise2data.data import Standardizer, sample_toy
from noise2data.errors import UserError
from noise2data.models import MLP, MLPConfig
from noise2data.paths import make_path
from noise2data.training import TrainConfig, ema_update_, latest_checkpoint, list_checkpoints, train


def _setup(seed=0):
    torch.manual_seed(seed)
    data = sample_toy("moons", 2000, torch.Generator().manual_seed(0))
    stats = Standardizer.fit(data)
    model = MLP(MLPConfig(data_shape=(2,), hidden=32, depth=2))
    return model, stats.forward(data), stats


def _cfg(**kw):
    base = dict(steps=40, batch_size=64, checkpoint_every=10, keep=5, log_every=10, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_loss_decreases():
    model, data, _ = _setup()
    res = train(model, make_path("condot"), data, _cfg(steps=300, log_every=50), progress=False)
    assert res.log[-1][1] < 0.8 * res.log[0][1]


def test_lr_schedules():
    cfg = TrainConfig(steps=1000, lr=1e-3, warmup_steps=100, lr_schedule="cosine")
    assert cfg.lr_at(50) < cfg.lr_at(100)  # warming up
    assert abs(cfg.lr_at(500) - 1e-3 * 0.5) < 1e-12 and cfg.lr_at(1000) < 1e-12
    const = TrainConfig(steps=1000, lr=1e-3, warmup_steps=0, lr_schedule="constant")
    assert const.lr_at(1) == const.lr_at(1000) == 1e-3
    with pytest.raises(UserError, match="unknown lr schedule"):
        TrainConfig(lr_schedule="step")


def test_ema_update_formula():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.clone() for p in a.parameters()]
    ema_update_(a, b, 0.9)
    for p_a, p_0, p_b in zip(a.parameters(), before, b.parameters(), strict=True):
        torch.testing.assert_close(p_a, 0.9 * p_0 + 0.1 * p_b)


@pytest.mark.parametrize("coupling", ["independent", "ot-blocks"])
def test_resume_is_bit_identical(tmp_path, monkeypatch, coupling):
    """Interrupt a run after step 25, resume from its step-20 checkpoint: same weights as straight through
    (with the blocked OT coupling too, at a batch it splits into blocks)."""
    import noise2data.training.loop as loop

    path = make_path("condot")
    kw = {} if coupling == "independent" else {"coupling": coupling, "batch_size": 300}
    m1, data, stats = _setup()
    train(m1, path, data, _cfg(steps=40, **kw), run_dir=tmp_path / "a", standardizer=stats, progress=False)

    m2, data, stats = _setup()
    calls = {"n": 0}
    real = loop.training_step_loss
    monkeypatch.setenv("NOISE2DATA_NO_MEMORY_CHECK", "1")  # count training steps only, not the memory probe

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 26:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "training_step_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(m2, path, data, _cfg(steps=40, **kw), run_dir=tmp_path / "b", standardizer=stats, progress=False)
    monkeypatch.setattr(loop, "training_step_loss", real)
    m3, _, _ = _setup(seed=123)  # a differently initialised model: resume must overwrite it all
    res = train(m3, path, data, _cfg(steps=40, **kw), run_dir=tmp_path / "b", standardizer=stats, resume=True,
                progress=False)
    for (k, v1), v3 in zip(m1.state_dict().items(), m3.state_dict().values(), strict=True):
        assert torch.equal(v1, v3), k
    assert res.step == 40
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30, 40]


def test_checkpoints_are_kept_and_verified(tmp_path, capsys):
    model, data, stats = _setup()
    train(model, make_path("condot"), data, _cfg(steps=50, keep=3), run_dir=tmp_path, standardizer=stats,
          progress=False)
    ckpts = list_checkpoints(tmp_path)
    assert [c.name for c in ckpts] == ["step_00000030", "step_00000040", "step_00000050"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    # damage the newest: it is reported and the previous one is used
    f = ckpts[-1] / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    assert latest_checkpoint(tmp_path) == ckpts[-2]
    assert "checksum mismatch in model.safetensors" in capsys.readouterr().err


def test_divergence_stops_without_writing_a_bad_checkpoint(tmp_path):
    model, data, stats = _setup()
    train(model, make_path("condot"), data, _cfg(steps=10), run_dir=tmp_path, standardizer=stats, progress=False)
    before = {p: p.read_bytes() for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="training diverged"):
        train(model, make_path("condot"), data * float("nan"), _cfg(steps=20), run_dir=tmp_path,
              standardizer=stats, resume=True, progress=False)
    after = {p: p.read_bytes() for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()}
    assert before == after


def test_resume_without_checkpoint_is_refused(tmp_path):
    model, data, _ = _setup()
    with pytest.raises(UserError, match="nothing to resume"):
        train(model, make_path("condot"), data, _cfg(), run_dir=tmp_path, resume=True, progress=False)


def _nan_on(steps_to_poison: set[int], monkeypatch):
    """Make the loss NaN at the given (1-based) calls of training_step_loss."""
    from noise2data.training import loop

    real, calls = loop.training_step_loss, {"n": 0}
    monkeypatch.setenv("NOISE2DATA_NO_MEMORY_CHECK", "1")  # count training steps only, not the memory probe

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        return out * float("nan") if calls["n"] in steps_to_poison else out

    monkeypatch.setattr(loop, "training_step_loss", poisoned)


def test_nonfinite_step_stops_the_run_before_any_checkpoint_after_it(tmp_path, monkeypatch):
    model, data, stats = _setup()
    _nan_on({15}, monkeypatch)
    with pytest.raises(UserError, match="non-finite loss or gradient at step 15"):
        train(model, make_path("condot"), data, _cfg(), run_dir=tmp_path, standardizer=stats, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000010"]
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step was not applied


def test_skip_nonfinite_counts_skips_and_keeps_weights_finite(tmp_path, monkeypatch):
    model, data, stats = _setup()
    _nan_on({5, 6, 22}, monkeypatch)
    res = train(model, make_path("condot"), data, _cfg(skip_nonfinite=True), run_dir=tmp_path,
                standardizer=stats, progress=False)
    assert res.skipped == 3 and res.step == 40
    assert all(torch.isfinite(p).all() for p in model.parameters())
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["skipped"] == 3 and all(map(lambda r: r["loss"] == r["loss"], rows))  # no NaN logged
    meta = json.loads((latest_checkpoint(tmp_path) / "meta.json").read_text())
    assert meta["skipped"] == 3


def test_too_many_skips_in_a_row_still_stop(monkeypatch):
    from noise2data.training.engine import MAX_SKIPS

    model, data, _ = _setup()
    _nan_on(set(range(3, 3 + MAX_SKIPS + 1)), monkeypatch)
    with pytest.raises(UserError, match=f"{MAX_SKIPS + 1} steps in a row"):
        train(model, make_path("condot"), data, _cfg(skip_nonfinite=True), progress=False)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_keeps_float32_weights(precision, capsys):
    model, data, _ = _setup()
    res = train(model, make_path("condot"), data, _cfg(steps=200, log_every=50, precision=precision),
                progress=False)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    assert res.log[-1][1] < 0.9 * res.log[0][1]
    slow = "fp16 autocast on the CPU runs many times slower" in capsys.readouterr().err
    assert slow == (precision == "fp16")  # said for fp16 on the CPU only


@pytest.mark.slow
def test_compiled_training_matches_eager_closely():
    m1, data, _ = _setup()
    m2, _, _ = _setup()
    train(m1, make_path("condot"), data, _cfg(steps=20), progress=False)
    train(m2, make_path("condot"), data, _cfg(steps=20, compile=True), progress=False)
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_fp16_resume_restores_the_loss_scale(tmp_path):
    m1, data, stats = _setup()
    train(m1, make_path("condot"), data, _cfg(steps=40, precision="fp16", lr_schedule="constant"), progress=False,
          run_dir=tmp_path / "a", standardizer=stats)
    m2, _, _ = _setup()
    train(m2, make_path("condot"), data, _cfg(steps=20, precision="fp16", lr_schedule="constant"), progress=False,
          run_dir=tmp_path / "b", standardizer=stats)
    meta = json.loads((latest_checkpoint(tmp_path / "b") / "meta.json").read_text())
    assert meta["grad_scaler"]["scale"] > 0
    m3, _, _ = _setup(seed=5)
    weights_only = tmp_path / "c"
    shutil.copytree(tmp_path / "b", weights_only)
    train(m3, make_path("condot"), data, _cfg(steps=40, precision="fp16", lr_schedule="constant"), progress=False,
          run_dir=tmp_path / "b", standardizer=stats, resume=True)
    for a, b in zip(m1.state_dict().values(), m3.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # the scale is carried over, not reset: a run stopped at scale 2 goes on at scale 2
    meta_file = latest_checkpoint(weights_only) / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["grad_scaler"]["scale"] = 2.0
    meta_file.write_text(json.dumps(meta))
    m4, _, _ = _setup()
    train(m4, make_path("condot"), data, _cfg(steps=30, precision="fp16", lr_schedule="constant"), progress=False,
          run_dir=weights_only, standardizer=stats, resume=True)
    assert json.loads((latest_checkpoint(weights_only) / "meta.json").read_text())["grad_scaler"]["scale"] == 2.0


def test_a_time_budget_drives_the_cosine_by_the_clock():
    cfg = TrainConfig(steps=10**9, minutes=2.0, lr=1e-3, warmup_steps=10)
    assert abs(cfg.lr_at(500, seconds=60.0) - 0.5e-3) < 1e-12  # half the budget spent: half the peak, whatever the step
    assert cfg.lr_at(5, seconds=60.0) < cfg.lr_at(10, seconds=60.0)  # the warm-up still counts steps
    assert cfg.lr_at(500, seconds=120.0) < 1e-12 and cfg.lr_at(500, seconds=500.0) < 1e-12
    steps_only = TrainConfig(steps=1000, lr=1e-3, warmup_steps=0)
    assert steps_only.lr_at(500, seconds=1e6) == steps_only.lr_at(500)  # no budget: the clock is ignored
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(UserError, match="minutes must be"):
            TrainConfig(minutes=bad)


def test_a_time_budget_ends_the_run_and_a_resume_spends_the_rest(tmp_path, monkeypatch):
    seen = []  # (step, seconds) handed to the schedule
    lr_at = TrainConfig.lr_at
    monkeypatch.setattr(TrainConfig, "lr_at", lambda self, step, seconds=0.0: seen.append((step, seconds))
                        or lr_at(self, step, seconds))
    model, data, stats = _setup()
    budget = 0.01  # minutes: 0.6 s
    res = train(model, make_path("condot"), data, _cfg(steps=10**6, minutes=budget, checkpoint_every=10**6),
                run_dir=tmp_path, standardizer=stats, progress=False)
    assert 1 < res.step < 10**6 and 0.6 <= res.seconds < 0.6 + 5.0
    assert [s for s, _ in seen] == list(range(1, res.step + 1))
    clock = [c for _, c in seen]
    assert clock == sorted(clock) and clock[-1] < 0.6  # every step began inside the budget
    from noise2data.training.checkpoint import load_checkpoint
    _, meta = load_checkpoint(latest_checkpoint(tmp_path), ("model",))
    assert meta["step"] == res.step and meta["train_seconds"] >= 0.6  # the final checkpoint: the run can go on
    first = res.step
    seen.clear()
    model, data, stats = _setup()
    res = train(model, make_path("condot"), data, _cfg(steps=10**6, minutes=2 * budget, checkpoint_every=10**6),
                run_dir=tmp_path, standardizer=stats, resume=True, progress=False)
    assert res.step > first and 1.2 <= res.seconds < 1.2 + 5.0
    assert seen[0][0] == first + 1 and seen[0][1] >= 0.6  # the time spent before counts
    model, data, stats = _setup()
    again = train(model, make_path("condot"), data, _cfg(steps=10**6, minutes=2 * budget, checkpoint_every=10**6),
                  run_dir=tmp_path, standardizer=stats, resume=True, progress=False)
    assert again.step == res.step and not again.log  # spent: nothing more to do


def test_a_step_cap_still_ends_a_budgeted_run_first():
    model, data, _ = _setup()
    res = train(model, make_path("condot"), data, _cfg(steps=15, minutes=10.0), progress=False)
    assert res.step == 15 and res.seconds < 60
