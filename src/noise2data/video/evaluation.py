"""Evaluating a video run on real clips (a held-out file given with ``--data``, else the training file):

- prediction (the first ``context_frames`` known, default T // 4: 4 of 16): PSNR, SSIM and MSE (the squared
  error summed over a frame's pixels in [0, 1], as OpenSTL reports it) of each predicted frame (the mean over
  ``best_of`` samples, and the best of them per clip), beside copying the last known frame, and beside a
  stronger baseline that learns nothing either: the nearest known frame moved along the motion estimated
  from the known frames (``motion.py``; "moved");
- interpolation (the first and last frames known): the same, beside copying the nearer known frame;
- digit centres (one-digit clips with stored centres): the error of the predicted digit's centre
  against the true one at each predicted frame, beside both baselines;
- generation (nothing known): the distribution of frame-to-frame speeds against real clips (W1,
  pixels/frame), with its floor between two disjoint real sets;
- identity (``--classifier``: a judge trained on the clips' own digits, ``noise2data features --data
  video:FILE``, or an MNIST classifier, whose crops are blown up to 28 pixels): the share of clips whose digit
  class stays the same in every frame, and (for prediction) equals the true class, beside real clips;
- a Frechet distance on the features of a 3-D CNN (``--features``, from ``noise2data features --video``),
  beside its floor.

The sampler is ``--solver``/``--steps``; prediction and interpolation use ``--known-sampler`` (default
:data:`.sampling.KNOWN_SAMPLER`, Euler in 2 steps on the refine grid, as ``sample --context``, unless
``--solver``, ``--steps`` or ``--nfe`` chose one sampler for every task): frames given pin most of the clip, so
fewer evaluations do. They and the frames continued after the lead frames are guided over the known frames by
``--guidance`` (default :data:`.sampling.KNOWN_GUIDANCE`, as ``sample``).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from ..errors import UserError
from ..guidance import interval_words
from ..modalities.base import EvalRequest
from ..samplers import GRIDS, ODE_SOLVERS
from . import metrics as M
from .known import known_mask, make_condition
from .model import nearest_known
from .motion import moved_known
from .sampling import KNOWN_SAMPLER, continue_lead, known_guidance, lead_frames, sample_clips, sampler_words


def _unit(x: Tensor) -> Tensor:
    return ((x.clamp(-1, 1) + 1) / 2).float()


def judge_size(ext) -> int | None:  # noqa: ANN001
    """The side of the crops the identity judge takes: its own (a classifier trained on the clips' digits, or
    MNIST's 28); refuses a judge that is not a classifier of grey images."""
    cfg = getattr(ext.net, "config", None)
    shape = tuple(getattr(cfg, "image_shape", ()))
    if len(shape) != 3 or shape[0] != 1 or shape[1] != shape[2]:
        raise UserError(f"--classifier must classify grey square digits (1, S, S), this one takes {shape or 'any'}: "
                        "train it with 'noise2data features --data video:CLIPS' (the clips' digits) or "
                        "'--data mnist:DIR' (a 3-D clip net from --video is for --features)")
    return shape[-1]


def _classes(ext, frames01: Tensor, centre: Tensor) -> Tensor:  # noqa: ANN001
    """Digit class per frame ``(N, T)`` from the identity judge, on crops around the centres at its size."""
    crops = M.digit_crops(frames01, centre, out=judge_size(ext))  # (N T, 1, S, S) in [0, 1]
    lo, hi = ext.value_range
    classes = ext.predict(crops * (hi - lo) + lo)
    return torch.where(M.blank(crops), M.NO_DIGIT, classes).view(frames01.shape[:2])


def moved_copy(real: Tensor, mask: Tensor, walls: tuple[float, ...] | None = None,
               speed: float | None = None) -> Tensor:
    """The baseline that moves what is known: ``(N, T, C, H, W)`` with every unknown frame the nearest known
    one moved along the known frames' estimated motion (``mask: (N, T)``), at ``speed`` and reflected at
    ``walls`` if given."""
    cond = make_condition(real, mask)
    return moved_known(cond, nearest_known(cond), walls=walls, speed=speed)


def _baselines(run, real: Tensor, mask: Tensor) -> dict[str, Tensor]:  # noqa: ANN001
    """The moved known frame, and where the run bounces at walls measured on its training clips, the same
    reflected there and moved at the clips' speed where the run measured one ("bounced": the run's own prior,
    with nothing learned)."""
    model = run.config["model"]
    out = {"moved": moved_copy(real, mask)}
    if model.get("bounce") and model.get("walls"):
        speed = model.get("speed") if model.get("steady_speed") else None
        out["bounced"] = moved_copy(real, mask, tuple(model["walls"]), speed)
    return out


def parse_sampler(text: str, flag: str = "--known-sampler") -> tuple[str, int, str]:
    """``"euler:2"`` -> ``("euler", 2, "uniform")``, ``"euler:2:refine"`` -> ``("euler", 2, "refine")``, checked
    (``flag`` names the option in the error)."""
    parts = text.strip().split(":")
    solver, steps, grid = parts + ["uniform"] if len(parts) == 2 else (parts if len(parts) == 3 else ("", "", ""))
    if solver not in ODE_SOLVERS or not steps.isdigit() or int(steps) < 1 or grid not in GRIDS:
        raise UserError(f"{flag} takes SOLVER:STEPS[:GRID] with steps >= 1, a solver of "
                        f"{', '.join(ODE_SOLVERS)} and a grid of {', '.join(GRIDS)} (e.g. euler:2), got {text!r}")
    return solver, int(steps), grid


def _task(run, real: Tensor, mask: Tensor, baseline: Tensor, request: EvalRequest, best_of: int,  # noqa: ANN001
          truth: Tensor | None, true_centres: Tensor | None, ext, sampler: tuple[str, int, str],  # noqa: ANN001
          guidance: float) -> dict:
    """Quality of the unknown frames of ``real: (N, T, C, H, W)`` given ``mask: (N, T)``, sampled with
    ``sampler = (solver, steps, grid)`` and ``guidance`` over the known frames."""
    todo = ~mask[0]
    target = _unit(real)[:, todo]
    base = _unit(baseline)[:, todo]
    baselines = {name: _unit(v)[:, todo] for name, v in _baselines(run, real, mask).items()}
    psnrs, ssims, sses, samples = [], [], [], []
    start = time.perf_counter()
    for k in range(best_of):
        x = sample_clips(run, len(real), context=real, mask=mask, solver=sampler[0], steps=sampler[1], grid=sampler[2],
                         seed=request.seed + 1000 * k, guidance=guidance, interval=request.guidance_interval).x
        pred = _unit(x)[:, todo]
        psnrs.append(M.psnr(pred, target))
        ssims.append(M.ssim(pred, target))
        sses.append(M.frame_sse(pred, target))
        samples.append(pred)
    secs = (time.perf_counter() - start) / (best_of * len(real))
    p, s = torch.stack(psnrs), torch.stack(ssims)  # (k, N, T')
    out = {"frames": [int(i) for i in todo.nonzero()[:, 0]], "seconds_per_clip": secs,
           "psnr": M.summary(p.mean(0)), "ssim": M.summary(s.mean(0)),
           "psnr_best": float(p.mean(2).max(0).values.mean()), "ssim_best": float(s.mean(2).max(0).values.mean()),
           "mse": M.summary(torch.stack(sses).mean(0)),
           "baseline_psnr": M.summary(M.psnr(base, target)), "baseline_ssim": M.summary(M.ssim(base, target)),
           "baseline_mse": M.summary(M.frame_sse(base, target)),
           **{f"{k}_{m}": M.summary(f(v, target)) for k, v in baselines.items()
              for m, f in (("psnr", M.psnr), ("ssim", M.ssim))}}
    if true_centres is not None:
        tc = true_centres[:, todo]
        err = (M.centres(samples[0]) - tc).norm(dim=-1)  # (N, T')
        out["centre_error"] = M.summary(err)
        out["baseline_centre_error"] = M.summary((M.centres(base) - tc).norm(dim=-1))
        out |= {f"{k}_centre_error": M.summary((M.centres(v) - tc).norm(dim=-1)) for k, v in baselines.items()}
    if ext is not None:
        out |= M.identity(_classes(ext, samples[0], M.centres(samples[0])), truth)
        out |= {f"{k}_identity_kept": M.identity(_classes(ext, v, M.centres(v)))["identity_kept"]
                for k, v in baselines.items()}
        real_id = M.identity(_classes(ext, target, M.centres(target)), truth)  # the judge's own ceiling
        out |= {f"real_{k}": real_id[k] for k in ("identity_kept", "identity_true") if k in real_id}
    return out


def evaluate_video(run, request: EvalRequest) -> dict:  # noqa: ANN001
    from ..metrics.features import load_extractor
    from .data import load_video

    extra = request.extra or {}
    if extra.get("known_sampler"):  # checked before any work
        known_sampler = parse_sampler(extra["known_sampler"])
    else:  # as `sample --context`: the measured sampler unless the user chose one for every task
        known_sampler = None if request.sampler_given else KNOWN_SAMPLER
    guidance = known_guidance(request)  # over the known frames
    spec = request.data or run.config["data"]["spec"]
    data = load_video(spec[len("video:"):] if spec.startswith("video:") else spec)
    t_model, shape = int(run.data_shape[0]), tuple(run.data_shape[1:])
    if tuple(data.clips.shape[1:]) != (t_model, *shape):
        raise UserError(f"{spec} holds clips of shape {tuple(data.clips.shape[1:])}, the run makes "
                        f"{(t_model, *shape)}: evaluate on clips like its training data")
    best_of = extra.get("best_of") or 4
    n = min(request.n, len(data))
    real = data.clips[:n]
    one_digit = data.centers is not None and data.centers.shape[2] == 1
    centres = data.centers[:n, :, 0] if one_digit else None
    truth = data.labels[:n, 0] if data.labels is not None and one_digit else None
    ext = load_extractor(extra["classifier"]) if extra.get("classifier") else None
    if ext is not None:
        judge_size(ext)  # refused before any work
    k = extra.get("context_frames") or max(1, t_model // 4)
    if not 1 <= k < t_model:
        raise UserError(f"--context-frames must be 1..{t_model - 1} (of the run's {t_model} frames), got {k}")
    lead = lead_frames(extra.get("lead_frames"), t_model)
    result: dict = {"run": str(run.run_dir), "step": run.step, "n": n, "reference": spec,
                    "sampler": {"solver": request.solver, "steps": request.steps, "best_of": best_of},
                    **({"known_sampler": dict(zip(("solver", "steps", "grid"), known_sampler, strict=True))}
                       if known_sampler else {}),
                    "known_guidance": guidance,
                    **({"known_guidance_interval": list(request.guidance_interval)}
                       if tuple(request.guidance_interval) != (0.0, 1.0) else {}),
                    "classifier": ext.info() if ext is not None else None, "metrics": {}}
    tasks = result["metrics"]
    pred_mask = known_mask(n, t_model, context_frames=k)
    copy_last = real[:, k - 1:k].expand(-1, t_model, -1, -1, -1)
    sampler = known_sampler or (request.solver, request.steps, request.grid)
    tasks["prediction"] = {"known": k, **_task(run, real, pred_mask, copy_last, request, best_of, truth, centres,
                                                  ext, sampler, guidance)}
    ends = known_mask(n, t_model, known=[0, t_model - 1])
    nearer = torch.where((torch.arange(t_model) < t_model / 2)[None, :, None, None, None],
                         real[:, :1], real[:, -1:])
    tasks["interpolation"] = _task(run, real, ends, nearer, request, 1, truth, centres, ext, sampler, guidance)
    # generation: speeds and features against two disjoint real sets (the second gives the floor)
    m = min(n, len(data) // 2)
    ref, floor_ref = data.clips[:m], data.clips[m:2 * m]
    fx = load_extractor(request.features) if request.features else None
    gen = sample_clips(run, m, solver=request.solver, steps=request.steps, seed=request.seed + 7).x
    tasks["generation"] = _generation(gen, ref, floor_ref, ext, fx)
    if lead:  # the same clips' first frames, the rest continued from them (as sample makes clips from nothing)
        rest = continue_lead(run, gen, lead, known_sampler=sampler, seed=request.seed + 8, guidance=guidance,
                             interval=request.guidance_interval).x
        tasks["generation_lead"] = {"lead_frames": lead, **_generation(rest, ref, floor_ref, ext, fx)}
    return result


def _generation(gen: Tensor, ref: Tensor, floor_ref: Tensor, ext, fx) -> dict:  # noqa: ANN001
    """Clips made from nothing ``gen: (M, T, C, H, W)`` against real clips ``ref`` (``floor_ref``, as many others,
    gives each metric's floor): speeds, identity (judge ``ext``), Frechet distance (features ``fx``)."""
    from ..metrics.fid import frechet_distance

    sp = [M.speeds(M.centres(_unit(v))) for v in (gen, ref, floor_ref)]
    out = {"n": len(gen), "speed_w1": M.wasserstein_1d(sp[0], sp[1]), "speed_w1_floor": M.wasserstein_1d(sp[2], sp[1]),
           "speed_mean": float(sp[0].mean()), "real_speed_mean": float(sp[1].mean())}
    if ext is not None:
        out |= M.identity(_classes(ext, _unit(gen), M.centres(_unit(gen))))
        out["real_identity_kept"] = M.identity(_classes(ext, _unit(ref), M.centres(_unit(ref))))["identity_kept"]
    if fx is not None:
        feats = [fx.features(v.transpose(1, 2)) for v in (gen, ref, floor_ref)]  # (N, C, T, H, W) in [-1, 1]
        out |= {"fvd": frechet_distance(feats[0], feats[1]), "fvd_floor": frechet_distance(feats[2], feats[1]),
                "features": fx.info()}
    return out


def _no_digit(task: dict) -> str:
    return f"; no digit in {task['no_digit_frames']:.3f} of frames" if "no_digit_frames" in task else ""


def _moved(task: dict, metric: str, fmt: str, unit: str = "") -> str:  # eval.json files from before it lack it
    vals = {k: task[f"{k}_{metric}"] for k in ("moved", "bounced") if f"{k}_{metric}" in task}
    return "".join(f", {k} {v if isinstance(v, float) else v['mean']:{fmt}}{unit}" for k, v in vals.items())


def format_video_eval(r: dict) -> str:
    ks = r.get("known_sampler")
    w = r.get("known_guidance", 1.0)  # eval.json files written before it was a default: unguided
    during = interval_words(r.get("known_guidance_interval"))
    guided = f", guidance {w:g} over the known frames{during}" if w != 1.0 else ""
    words = sampler_words((ks["solver"], ks["steps"], ks.get("grid", "uniform"))) if ks else ""
    known = f" ({words}{guided} for prediction and interpolation)" if ks else \
        (f" ({guided[2:]})" if guided else "")
    lines = [f"{r['run']} at step {r['step']}: {r['n']} clips of {r['reference']}; {r['sampler']['solver']} "
             f"{r['sampler']['steps']} steps{known}"]
    for task in ("prediction", "interpolation"):
        t = r["metrics"][task]
        lines.append(f"{task} of frames {t['frames'][0]}..{t['frames'][-1]} ({t['seconds_per_clip']:.2f} s/clip):")
        k = r["sampler"]["best_of"] if task == "prediction" else 1
        lines.append(f"  PSNR {t['psnr']['mean']:.2f} dB (best of {k}: {t['psnr_best']:.2f}), baseline "
                     f"{t['baseline_psnr']['mean']:.2f} dB{_moved(t, 'psnr', '.2f', ' dB')}")
        lines.append(f"  SSIM {t['ssim']['mean']:.4f} (best {t['ssim_best']:.4f}), baseline "
                     f"{t['baseline_ssim']['mean']:.4f}{_moved(t, 'ssim', '.4f')}")
        if "mse" in t:  # eval.json files written before it was measured lack it
            lines.append(f"  MSE per frame {t['mse']['mean']:.1f}, baseline {t['baseline_mse']['mean']:.1f}")
        if "centre_error" in t:
            lines.append(f"  digit centre error {t['centre_error']['mean']:.2f} px, baseline "
                         f"{t['baseline_centre_error']['mean']:.2f} px{_moved(t, 'centre_error', '.2f', ' px')}")
        if "identity_kept" in t:
            true = f", true class kept {t['identity_true']:.3f}" if "identity_true" in t else ""
            real = (f"; real clips {t['real_identity_kept']:.3f}" + (f", true {t['real_identity_true']:.3f}"
                                                                      if "real_identity_true" in t else "")
                    if "real_identity_kept" in t else "")
            lines.append(f"  identity kept {t['identity_kept']:.3f}{true}{_moved(t, 'identity_kept', '.3f')}"
                         f"{real}{_no_digit(t)}")
    for key in ("generation", "generation_lead"):
        if key not in r["metrics"]:
            continue
        g = r["metrics"][key]
        how = f", the first {g['lead_frames']} frames drawn and the rest continued" if "lead_frames" in g else ""
        lines.append(f"generation ({g['n']} clips{how}): speed W1 {g['speed_w1']:.3f} px/frame (floor "
                     f"{g['speed_w1_floor']:.3f}); mean speed {g['speed_mean']:.2f} (real {g['real_speed_mean']:.2f})")
        if "identity_kept" in g:
            lines.append(f"  identity kept {g['identity_kept']:.3f} (real clips {g['real_identity_kept']:.3f})"
                         f"{_no_digit(g)}")
        if "fvd" in g:
            lines.append(f"  Frechet distance (3-D CNN features) {g['fvd']:.3f} (floor {g['fvd_floor']:.3f})")
    return "\n".join(lines)
