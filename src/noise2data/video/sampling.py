"""Sampling clips from a video run: unconditional, continued from context frames, filled in between
given frames, and longer than the model's T (block by block)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserError
from ..fields import model_field
from ..guidance import GuidedField, classifier_free_guidance
from ..samplers import ODE_SOLVERS, SamplerOutput, make_grid
from .known import known_mask, make_condition

# The sampler of clips with known frames (prediction, interpolation) unless the user picks one: frames given pin
# most of the clip, and on the 30-minute Moving MNIST run Euler in 2 steps predicted as well as the midpoint rule
# in 8 (SSIM 0.601 against 0.600, centre error 2.6 against 3.2 px) at a fifth of the time (benchmarks/video.py).
# Clips made from nothing keep the run's default (they need the 16 evaluations).
# Its time grid: the first step goes from noise to nearly the data (samplers.grids.refine_grid), the second
# sharpens what the first estimated: with guidance 1.25, prediction SSIM 0.819 (uniform) -> 0.831, identity kept
# 70% -> 92%; interpolation 0.848 -> 0.858, 93% -> 96%. (solver, steps, grid).
KNOWN_SAMPLER = ("euler", 2, "refine")
# Classifier-free guidance over the known frames (the empty mask is the null condition) for clips with known frames,
# unless the user picks a scale. On the 30-minute Moving MNIST run (200 test clips, Euler 2, 4 -> 12) scales 1, 1.1,
# 1.2, 1.25, 1.3, 1.5, 2 predict with SSIM 0.804, 0.815, 0.819, 0.819, 0.817, 0.802, 0.729 and keep the digit's class
# in 42, 54, 67, 70, 75, 79, 67% of clips; interpolation at 1, 1.25, 1.5: SSIM 0.843, 0.849, 0.824, identity 79,
# 93, 95%. It doubles the network's evaluations per step. Clips from nothing have no known frames to guide by.
KNOWN_GUIDANCE = 1.25


def known_guidance(request) -> float:  # noqa: ANN001 - a Sample/Eval/ReportRequest
    """The guidance over known frames that ``request`` asks for: its ``--guidance`` where given, else
    :data:`KNOWN_GUIDANCE`."""
    return request.guidance if request.guidance_given else KNOWN_GUIDANCE


def sampler_words(sampler: tuple[str, int, str]) -> str:
    """``("euler", 2, "refine")`` -> ``"euler 2 steps on the refine grid"`` (a uniform grid goes unsaid)."""
    solver, steps, grid = sampler
    return f"{solver} {steps} steps" + (f" on the {grid} grid" if grid != "uniform" else "")


def default_lead_frames(frames: int) -> int:
    """How many frames of clips drawn whole start the clips made from nothing (:func:`generate_clips`): a quarter
    of the model's ``frames`` (4 of 16), 0 (draw whole clips) for clips of one frame. Measured on the 30-minute
    Moving MNIST run (benchmarks/video.py, 200 clips): speed W1 0.73 -> 0.29 px/frame and Frechet distance 14.1 ->
    8.8 (floor 0.65) against clips drawn whole; 1, 2, 3 and 6 lead frames gave W1 1.53, 0.74, 0.42 and 0.33 (the
    continuation then Euler 2, uniform, unguided). Continued with :data:`KNOWN_SAMPLER` and :data:`KNOWN_GUIDANCE`:
    1, 2, 3, 4 lead frames give W1 1.03, 0.31, 0.19, 0.21 and Frechet distance 8.7, 6.5, 7.4, 7.5."""
    return max(1, frames // 4) if frames > 1 else 0


def lead_frames(given: int | None, frames: int) -> int:
    """``--lead-frames`` for a model of ``frames`` frames: :func:`default_lead_frames` where not given, 0 (draw
    whole clips), else checked to lie in 1..frames - 1."""
    lead = default_lead_frames(frames) if given is None else given
    if lead and not 1 <= lead < frames:
        raise UserError(f"--lead-frames must be 1..{frames - 1} (of the run's {frames} frames; 0: draw whole clips), "
                        f"got {lead}")
    return lead


def _field(run, cond: Tensor, mask: Tensor, guidance: float, interval: tuple[float, float]):  # noqa: ANN001, ANN202
    field = model_field(run.model, run.path, run.prediction, cond=cond)
    if guidance == 1.0 or not bool(mask.any()):
        return field
    null = model_field(run.model, run.path, run.prediction, cond=torch.zeros_like(cond))  # nothing known
    return classifier_free_guidance(field, null, guidance, interval)  # it checks the interval


@torch.inference_mode()
def sample_block(run, known: Tensor, mask: Tensor, *, solver: str, steps: int, generator: torch.Generator,  # noqa: ANN001
                 guidance: float = 1.0, interval: tuple[float, float] = (0.0, 1.0), grid: str = "uniform",
                 trajectory: bool = False) -> SamplerOutput:
    """One block of ``T`` frames in the model's units: ``known: (B, T, C, H, W)`` (used where ``mask: (B, T)``).

    The ODE runs from noise with the known frames as the condition; the known frames are then put
    back exactly as given.
    """
    if solver not in ODE_SOLVERS:
        raise UserError(f"unknown solver '{solver}': expected one of {', '.join(ODE_SOLVERS)}")
    lo, hi = run.path.sampling_interval(run.prediction)
    ts = make_grid(grid, run.path, steps, lo, hi)
    cond = make_condition(known, mask)
    x0 = run.path.sample_prior(known.shape, generator=generator, device=known.device)
    field = _field(run, cond, mask, guidance, interval)
    out = ODE_SOLVERS[solver](field, x0, ts, path=run.path, trajectory=trajectory)
    m = mask[:, :, None, None, None]
    x = torch.where(m, known, out.x)
    traj = torch.where(m[None], known[None], out.trajectory) if trajectory else None
    evals = field.network_evals if isinstance(field, GuidedField) else out.nfe  # guided: also the empty mask's
    return SamplerOutput(x=x, nfe=out.nfe, trajectory=traj, times=out.times, network_evals=evals)


@torch.inference_mode()
def sample_clips(run, n: int, *, context: Tensor | None = None, mask: Tensor | None = None,  # noqa: ANN001
                 frames: int | None = None, overlap: int | None = None, solver: str = "heun", steps: int = 8,
                 seed: int = 0, guidance: float = 1.0, interval: tuple[float, float] = (0.0, 1.0),
                 grid: str = "uniform", batch_size: int | None = None, trajectory: bool = False) -> SamplerOutput:
    """``n`` clips ``(n, frames, C, H, W)`` in [-1, 1] (video runs are not standardised); ``grid``: the solver's
    time grid (:func:`..samplers.make_grid`).

    Args:
        context: ``(n, T, C, H, W)`` given frames in [-1, 1] (read where ``mask`` is True).
        mask: ``(n, T)`` which frames are given (None: nothing, unconditional generation).
        frames: clip length (default the model's T); longer clips are made block by block, each
            block given the last ``overlap`` frames of the one before (default: the given prefix's
            length, or T // 4).
    """
    t_model = int(run.data_shape[0])
    shape = tuple(run.data_shape[1:])
    frames = frames or t_model
    mask = torch.zeros(n, t_model, dtype=torch.bool) if mask is None else mask.bool()
    if mask.shape != (n, t_model):
        raise UserError(f"the known-frame mask must be ({n}, {t_model}), got {tuple(mask.shape)}")
    known = torch.zeros(n, t_model, *shape) if context is None else context.float()
    if tuple(known.shape) != (n, t_model, *shape):
        raise UserError(f"context clips must be ({n}, {t_model}, {', '.join(map(str, shape))}), got "
                        f"{tuple(known.shape)}")
    if overlap is None:
        prefix = int(mask[0].long().cumprod(0).sum())
        overlap = prefix if prefix else max(1, t_model // 4)
    if frames > t_model and not 1 <= overlap < t_model:
        raise UserError(f"a clip longer than {t_model} frames is made in blocks that overlap by 1..{t_model - 1} "
                        "frames")
    gen = torch.Generator(run.device).manual_seed(seed)
    bs = batch_size or n
    outs, nfe, traj, times = [], 0, None, None
    for start in range(0, n, bs):
        sl = slice(start, start + bs)
        z = known[sl].to(run.device)  # video runs are not standardised: clips live in [-1, 1]
        m = mask[sl].to(run.device)
        res = sample_block(run, z, m, solver=solver, steps=steps, generator=gen, guidance=guidance,
                           interval=interval, grid=grid, trajectory=trajectory)
        clip, nfe, evals = res.x, res.nfe, res.network_evals
        if trajectory and traj is None:
            traj, times = res.trajectory, res.times
        while clip.shape[1] < frames:  # the next block is given the last `overlap` frames
            nxt = torch.zeros_like(z)
            nxt[:, :overlap] = clip[:, -overlap:]
            m_next = torch.zeros_like(m)
            m_next[:, :overlap] = True
            more = sample_block(run, nxt, m_next, solver=solver, steps=steps, generator=gen, guidance=guidance,
                                interval=interval, grid=grid)
            clip = torch.cat([clip, more.x[:, overlap:]], 1)
            nfe, evals = nfe + more.nfe, evals + more.network_evals
        outs.append(clip[:, :frames].cpu())
    traj = traj.cpu() if traj is not None else None
    return SamplerOutput(x=torch.cat(outs), nfe=nfe, trajectory=traj, times=times.cpu() if times is not None else None,
                         network_evals=evals)


@torch.inference_mode()
def continue_lead(run, clips: Tensor, lead: int, *, frames: int | None = None,  # noqa: ANN001
                  known_sampler: tuple = KNOWN_SAMPLER, seed: int = 0, guidance: float = 1.0,
                  interval: tuple[float, float] = (0.0, 1.0), batch_size: int | None = None,
                  trajectory: bool = False) -> SamplerOutput:
    """The second stage of :func:`generate_clips`: ``clips: (n, T, C, H, W)`` kept for their first ``lead`` frames,
    the rest continued from those as a prediction is (``known_sampler``: solver, steps and grid, uniform if left
    out)."""
    n, t_model = clips.shape[:2]
    solver, steps, grid = (*known_sampler, "uniform")[:3]
    return sample_clips(run, n, context=clips, mask=known_mask(n, t_model, context_frames=lead), frames=frames,
                        solver=solver, steps=steps, grid=grid, seed=seed, guidance=guidance,
                        interval=interval, batch_size=batch_size, trajectory=trajectory)


@torch.inference_mode()
def generate_clips(run, n: int, lead: int, *, frames: int | None = None, solver: str = "heun",  # noqa: ANN001
                   steps: int = 8, grid: str = "uniform", known_sampler: tuple = KNOWN_SAMPLER,
                   seed: int = 0, guidance: float = 1.0, interval: tuple[float, float] = (0.0, 1.0),
                   batch_size: int | None = None, trajectory: bool = False) -> SamplerOutput:
    """``n`` clips from nothing in two stages, ``(n, frames, C, H, W)`` in [-1, 1]: whole clips drawn from nothing
    (``solver``, ``steps``, ``grid``) give their first ``lead`` frames, and the rest is continued from those as a
    prediction is (``known_sampler``, :func:`continue_lead`): the one model, asked what comes after the frames it
    drew. ``lead=0``: the whole clips as drawn.

    Why: a clip drawn at once must get every frame's content and motion right together; continued from its
    first frames, the later frames start from the known ones (the moved known frame, where the run has one),
    as in prediction. ``benchmarks/video.py`` measures both ways. The trajectory is the second stage's.
    """
    lead = lead_frames(lead, int(run.data_shape[0]))
    common = {"frames": frames, "guidance": guidance, "interval": interval, "batch_size": batch_size}
    if not lead:
        return sample_clips(run, n, solver=solver, steps=steps, grid=grid, seed=seed, trajectory=trajectory, **common)
    first = sample_clips(run, n, solver=solver, steps=steps, grid=grid, seed=seed, **{**common, "frames": None})
    rest = continue_lead(run, first.x, lead, known_sampler=known_sampler, seed=seed + 1, trajectory=trajectory,
                         **common)
    return SamplerOutput(x=rest.x, nfe=first.nfe + rest.nfe, trajectory=rest.trajectory, times=rest.times,
                         network_evals=first.network_evals + rest.network_evals)
