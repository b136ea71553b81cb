"""A run folder as a unit: its config.json, its newest checkpoint, and sampling from it."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .data import Standardizer
from .errors import UserError
from .fields import model_field
from .guidance import GuidedField, guided_model_field
from .likelihood import LikelihoodOutput, log_likelihood
from .modalities import Modality, modality_of
from .paths import GaussianPath, make_path
from .samplers import JUMP_SOLVERS, ODE_SOLVERS, SamplerOutput, constant_diffusion, euler_maruyama, make_grid, sde_drift
from .training.checkpoint import (
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    verify_checkpoint,
    write_json_atomic,
)
from .training.config import prediction_of, resolve_device
from .training.engine import check_compatible

CONFIG_FILE = "config.json"


def write_run_config(run_dir: str | Path, config: dict) -> None:
    """Write ``config.json`` (data, path, model, train sections) atomically."""
    write_json_atomic(Path(run_dir) / CONFIG_FILE, {"noise2data_version": __version__, **config})


def read_run_config(run_dir: str | Path) -> dict:
    """Read a run's ``config.json``, with a clear error when the folder is not a run."""
    run_dir = Path(run_dir)
    f = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    if not f.is_file():
        raise UserError(f"{run_dir} is not a noise2data run (no {CONFIG_FILE}); train one with "
                        f"'noise2data train --out {run_dir}'")
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{f} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    missing = {"data", "path", "model", "train"} - set(cfg)
    if missing:
        raise UserError(f"{f} lacks the section(s) {', '.join(sorted(missing))}: not a noise2data run config")
    return cfg


def default_solver(config: dict) -> str:
    """The sampler a run uses unless told: ``meanflow`` for a jump model (one evaluation per jump), else
    ``midpoint`` (half Heun's error at equal NFE; benchmarks/recipe.py)."""
    return JUMP_SOLVERS[0] if config["model"].get("mean_flow") else "midpoint"


@dataclass
class Run:
    """A trained model with everything needed to sample it in data units."""

    run_dir: Path
    config: dict
    model: nn.Module
    path: GaussianPath
    prediction: str
    standardizer: Standardizer
    step: int
    device: torch.device

    @property
    def modality(self) -> Modality:
        """The kind of data this run models (from config.json; recognised for older runs)."""
        return modality_of(self.config)

    @property
    def jumps(self) -> bool:
        """Whether the model makes jumps over [t, r] (MeanFlow), besides giving a velocity."""
        return bool(self.config["model"].get("mean_flow"))

    @property
    def default_solver(self) -> str:
        return default_solver(self.config)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.config["model"].get("data_shape") or self.config["data"]["shape"])

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        *,
        solver: str | None = None,
        steps: int = 8,
        grid: str = "uniform",
        sde: bool = False,
        diffusion: float = 0.0,
        seed: int = 0,
        batch_size: int | None = None,
        trajectory: bool = False,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        label: int | Sequence[float] | torch.Tensor | None = None,
        guidance: float = 1.0,
        guidance_interval: tuple[float, float] | None = None,
    ) -> SamplerOutput:
        """Draw ``n`` samples ``(n, *D)`` in data units.

        ODE with ``solver`` (default :attr:`default_solver`) over ``steps`` steps of the ``grid``, or,
        with ``sde=True``, Euler-Maruyama with diffusion coefficient ``diffusion`` (the SDE extension). ``dopri5``
        ignores ``steps`` and uses ``rtol``/``atol``. The grid spans
        :meth:`GaussianPath.sampling_interval` of the model's prediction. With ``label`` (a model
        trained with labels), samples of that class, with classifier-free guidance of scale
        ``guidance`` applied for t in ``guidance_interval`` (by default the modality's
        :attr:`~noise2data.modalities.Modality.guidance_interval`); without, the model's null label. For a
        model trained on vector conditions, ``label`` is that vector ``(k,)``, guided the same way.
        """
        if not isinstance(n, int) or n < 1:
            raise UserError(f"the number of samples must be a positive integer, got {n!r}")
        baked = float(self.config["train"].get("mean_flow", {}).get("guidance", 1.0)) if self.jumps else 1.0
        if baked != 1.0 and guidance != 1.0:
            raise UserError(f"this jump model was trained with guidance {baked:g} baked in (--mf-guidance): sample it "
                            "with --guidance 1 (the default); another scale would guide it twice")
        solver = solver or self.default_solver
        if not sde and solver not in ODE_SOLVERS:
            raise UserError(f"unknown solver '{solver}': expected one of {', '.join(ODE_SOLVERS)}")
        if not sde and solver in JUMP_SOLVERS and not self.jumps:
            raise UserError(f"the {solver} solver needs a jump model (trained with --objective meanflow, or made by "
                            "'noise2data distill'); this run predicts velocities: use euler, midpoint, dpm++2m, ...")
        lo, hi = self.path.sampling_interval(self.prediction)
        ts = make_grid(grid, self.path, steps, lo, hi)
        gen = torch.Generator(self.device).manual_seed(seed)
        bs = batch_size or n
        outs, evals = [], None
        for start in range(0, n, bs):
            m = min(bs, n - start)
            if label is None:
                field = model_field(self.model, self.path, self.prediction)
            else:
                labels = self._condition(label, m)
                field = guided_model_field(self.model, self.path, self.prediction, labels, guidance,
                                           interval=guidance_interval or self.modality.guidance_interval)
            x = self.modality.prior(self, m, gen)  # (m, *D)
            if sde:
                g = constant_diffusion(diffusion)
                out = euler_maruyama(sde_drift(field, g, path=self.path), x, ts, diffusion=g,
                                     generator=gen, trajectory=trajectory)
            elif solver == "dopri5":
                out = ODE_SOLVERS[solver](field, x, ts, rtol=rtol, atol=atol, path=self.path, trajectory=trajectory)
            else:
                out = ODE_SOLVERS[solver](field, x, ts, path=self.path, trajectory=trajectory)
            outs.append(out)
            if evals is None and isinstance(field, GuidedField):  # per sample: the first batch's count
                evals = field.network_evals
        x = self.standardizer.inverse(torch.cat([o.x for o in outs])).cpu()
        traj = None
        if trajectory:
            traj = self.standardizer.inverse(torch.cat([o.trajectory for o in outs], dim=1)).cpu()
        return SamplerOutput(x=x, nfe=outs[0].nfe, trajectory=traj, times=outs[0].times.cpu() if trajectory else None,
                             network_evals=evals)

    def _condition(self, label: int | Sequence[float] | torch.Tensor, m: int) -> torch.Tensor:
        """``m`` copies of one condition: labels ``(m,)`` or vectors ``(m, k)``."""
        cond_dim = int(self.config["model"].get("cond_dim", 0) or 0)
        if cond_dim:
            y = torch.as_tensor(label, dtype=torch.float32, device=self.device).reshape(-1)
            if y.numel() != cond_dim:
                raise UserError(f"this run is conditioned on vectors of {cond_dim} numbers, got {y.numel()}: "
                                f"{label!r}")
            return y[None].expand(m, cond_dim).contiguous()
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise UserError(f"this run takes a class label (an integer), got {label!r}")
        return torch.full((m,), int(label), dtype=torch.long, device=self.device)

    def log_likelihood(
        self,
        x: torch.Tensor,
        *,
        solver: str = "rk4",
        steps: int = 64,
        divergence: str = "auto",
        probe: str = "rademacher",
        seed: int = 0,
        batch_size: int = 500,
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> LikelihoodOutput:
        """Exact log p(x) in data units of points ``x: (N, *D)``, through the probability-flow ODE.

        The model works in standard units z = (x - mean) / std, so log p(x) = log p(z) - sum log std.
        ``divergence='auto'`` is exact for up to 16 dimensions and Hutchinson's estimate above.
        """
        self.modality.check_likelihood(self)
        x = torch.as_tensor(x)
        if tuple(x.shape[1:]) != self.data_shape:
            raise UserError(f"points of shape {tuple(x.shape[1:])} do not match the run's data shape {self.data_shape}")
        d = math.prod(self.data_shape)
        if divergence == "auto":
            divergence = "exact" if d <= 16 else "hutchinson"
        field = model_field(self.model, self.path, self.prediction)
        lo, hi = self.path.sampling_interval(self.prediction)
        gen = torch.Generator(self.device).manual_seed(seed)
        log_det = float(self.standardizer.std.double().log().sum())
        outs = []
        for start in range(0, len(x), batch_size):
            z = self.standardizer.forward(x[start:start + batch_size].float().to(self.device))
            outs.append(log_likelihood(field, z, self.path, solver=solver, steps=steps, t_lo=lo, t_hi=hi,
                                       divergence=divergence, probe=probe, generator=gen, rtol=rtol, atol=atol))
        return LikelihoodOutput.concat(outs, shift=-log_det)


def load_run(run_dir: str | Path, *, ema: bool = True, device: str = "cpu", step: int | None = None) -> Run:
    """Load a run's newest intact checkpoint (or the one of ``step``; EMA weights by default) for sampling."""
    from .models import build_model, complete_model_config

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if step is None:
        ckpt = latest_checkpoint(run_dir)
    else:
        found = {checkpoint_step(p): p for p in list_checkpoints(run_dir)}
        ckpt = found.get(step)
        if ckpt is None:
            raise UserError(f"{run_dir} has no checkpoint of step {step}; it has steps {sorted(found)}")
        problem = verify_checkpoint(ckpt)
        if problem:
            raise UserError(f"{ckpt} is damaged ({problem}): pick another step")
    if ckpt is None:
        raise UserError(f"{run_dir} has no intact checkpoint yet: train it first")
    groups, meta = load_checkpoint(ckpt, ("ema" if ema else "model", "stats"))
    stored, described = meta.get("model"), cfg["model"]
    if stored is not None and stored != described:
        stored, described = complete_model_config(stored), complete_model_config(described)
    if stored is not None and stored != described:
        key = next(k for k in sorted(set(stored) | set(described)) if stored.get(k) != described.get(k))
        raise UserError(f"{ckpt} was written for another model than config.json describes: {key} is "
                        f"{stored.get(key)!r} in the checkpoint and {described.get(key)!r} in config.json")
    model = build_model(cfg["model"])
    weights = groups["ema" if ema else "model"]
    check_compatible(model, weights, ckpt)
    model.load_state_dict(weights)
    dev = resolve_device(device)
    model.to(dev).eval()
    return Run(run_dir=run_dir, config=cfg, model=model, path=make_path(cfg["path"]),
               prediction=prediction_of(cfg["train"]["objective"]),
               standardizer=Standardizer.from_state_dict(groups["stats"]),
               step=int(meta["step"]), device=dev)
