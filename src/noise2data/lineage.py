"""Runs made from other runs: distillation into a jump model, and reflow (rectified flow).

Both are ordinary runs (config.json, checkpoints, resume, sample, eval, report) whose config.json
holds one more section naming where they came from, so a resume rebuilds the same training problem:

- ``distill``: a jump model (MeanFlow) with the source's architecture plus the jump embedding,
  initialised from the source's EMA weights (so it starts as u(x, t, r) = v(x, t)), trained with
  the source's velocity as the ``v`` of MeanFlow's target (the marginal velocity: a lower-variance
  target than the conditional one) unless ``teacher_velocity`` is off;
- ``reflow``: (noise, sample) pairs drawn from the source with an accurate ODE solver and stored in
  the run folder (``reflow_pairs.safetensors``); the new model learns the straight paths between
  each pair, initialised from the source's weights (Liu et al. 2023, 2-rectified flow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import UserError
from .run import Run, load_run

PAIRS_FILE = "reflow_pairs.safetensors"


@dataclass
class Lineage:
    """What a derived run trains with, besides its data.

    Attributes:
        section: ``{"distill": {...}}`` or ``{"reflow": {...}}``, written into config.json.
        teacher: the source's network (EMA weights, frozen) whose velocity enters MeanFlow's target.
        init: the source's EMA weights, to start a fresh run from.
        data, pairs, cond: reflow's samples x1 ``(N, *D)`` and their noise x0 ``(N, *D)`` in model
            units, and the condition each was drawn with (labels ``(N,)``, vectors ``(N, k)``, or None).
        source: the source run.
    """

    section: dict
    source: Run
    teacher: nn.Module | None = None
    init: dict[str, Tensor] | None = None
    data: Tensor | None = None
    pairs: Tensor | None = None
    cond: Tensor | None = None
    notes: list[str] = field(default_factory=list)


def load_source(run_dir: str | Path, step: int | None = None) -> Run:
    """The source run on the CPU (its EMA weights), with errors that say what is missing."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a noise2data run (no config.json): give the folder of a trained run")
    return load_run(run_dir, step=step)


def distill_lineage(source: Run, *, teacher_velocity: bool = True) -> Lineage:
    """Distil ``source`` (a flow model predicting velocities) into a jump model."""
    if source.jumps:
        raise UserError(f"{source.run_dir} is already a jump model: sample it with --solver meanflow")
    if source.prediction != "velocity":
        raise UserError(f"{source.run_dir} predicts {source.prediction}, not a velocity: distillation starts from a "
                        "flow-matching run (--objective velocity)")
    notes = []
    if source.config["model"].get("time_embedding", "sinusoidal") == "sinusoidal":
        notes.append("the source embeds time with 1000x frequencies; MeanFlow's target differentiates through them "
                     "and tends to diverge: train the source with --time-embedding smooth")
    section = {"distill": {"source": str(source.run_dir.resolve()), "step": source.step, "method": "meanflow",
                           "teacher_velocity": teacher_velocity}}
    return Lineage(section=section, source=source, teacher=source.model if teacher_velocity else None,
                   init=source.model.state_dict(), notes=notes)


@torch.inference_mode()
def make_pairs(source: Run, conditions: Tensor | None, n: int, *, solver: str, steps: int, seed: int,
               batch_size: int = 4096) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(x0, x1, cond)``: ``n`` noise draws and where the source's ODE takes them, in model units.

    ``conditions`` (the training conditions, or None) are resampled with replacement, one per pair,
    and each pair is drawn with its own (unguided) condition.
    """
    from .fields import model_field
    from .samplers import ODE_SOLVERS, make_grid

    gen = torch.Generator(source.device).manual_seed(seed)
    cond = None
    if conditions is not None:
        idx = torch.randint(0, len(conditions), (n,), generator=gen, device=source.device)
        cond = conditions.to(source.device)[idx]
    lo, hi = source.path.sampling_interval(source.prediction)
    ts = make_grid("uniform", source.path, steps, lo, hi)
    x0s, x1s = [], []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        c = cond[start:start + m] if cond is not None else None
        field_ = model_field(source.model, source.path, source.prediction, cond=c)
        x0 = source.modality.prior(source, m, gen)
        x1 = ODE_SOLVERS[solver](field_, x0, ts, path=source.path).x
        if not torch.isfinite(x1).all():
            raise UserError(f"the source produced NaN/Inf samples with {solver} x {steps}: use more --sample-steps")
        x0s.append(x0.cpu())
        x1s.append(x1.cpu())
    return torch.cat(x0s), torch.cat(x1s), cond.cpu() if cond is not None else None


def reflow_lineage(source: Run, out: Path, conditions: Tensor | None, *, n: int, solver: str, steps: int, seed: int,
                   init: bool = True) -> Lineage:
    """Draw ``n`` pairs from ``source`` (or read them back from ``out`` on resume) for reflow."""
    from safetensors.torch import load_file, save_file

    if source.jumps:
        raise UserError(f"{source.run_dir} is a jump model: reflow straightens a flow model's paths")
    f = out / PAIRS_FILE
    if f.is_file():
        stored = load_file(str(f))
        x0, x1, cond = stored["x0"], stored["x1"], stored.get("cond")
    else:
        x0, x1, cond = make_pairs(source, conditions, n, solver=solver, steps=steps, seed=seed)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / (PAIRS_FILE + ".tmp")
        save_file({"x0": x0, "x1": x1, **({"cond": cond} if cond is not None else {})}, str(tmp))
        tmp.replace(f)
    section = {"reflow": {"source": str(source.run_dir.resolve()), "step": source.step, "pairs": len(x0),
                          "solver": solver, "steps": steps, "seed": seed, "init": init}}
    return Lineage(section=section, source=source, init=source.model.state_dict() if init else None,
                   data=x1, pairs=x0, cond=cond)


def resumed_lineage(cfg: dict, out: Path) -> Lineage | None:
    """The lineage of a stored derived run (None for an ordinary run), for ``--resume``."""
    if "distill" in cfg:
        d = cfg["distill"]
        return distill_lineage(_stored_source(d, "distilled"), teacher_velocity=bool(d.get("teacher_velocity", True)))
    if "reflow" in cfg:
        d = cfg["reflow"]
        if not (out / PAIRS_FILE).is_file():
            raise UserError(f"{out / PAIRS_FILE} is missing: the reflow pairs cannot be rebuilt exactly; start anew")
        return reflow_lineage(_stored_source(d, "reflowed"), out, None, n=d["pairs"], solver=d["solver"],
                              steps=d["steps"], seed=d["seed"], init=d.get("init", True))
    return None


def _stored_source(d: dict, what: str) -> Run:
    src = Path(d["source"])
    if not src.is_dir():
        raise UserError(f"this run was {what} from {src}, which is gone: resuming needs it")
    return load_source(src, step=int(d["step"]))


__all__ = ["PAIRS_FILE", "Lineage", "distill_lineage", "load_source", "make_pairs", "reflow_lineage",
           "resumed_lineage"]
