"""Evaluating a trained run: sample metrics beside their floor, and held-out log-likelihood.

Real data for the comparison comes from the run's own data specification: fresh, independent
draws for generated data (toy sets, mixtures), whose seeds differ from the training seed; for a
data file, two disjoint random subsets of it (say so: they are the training points, not held
out) or, better, a held-out file the user names. Results are plain dicts, written as eval.json.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .data import Standardizer, true_log_prob
from .errors import UserError
from .guidance import interval_words
from .metrics import SAMPLE_METRICS, MetricResult, check_metric_names, combine, compare, format_results
from .run import Run
from .training.checkpoint import write_json_atomic
from .training.config import prediction_of

EVAL_METRICS = (*SAMPLE_METRICS, "nll", "fid", "kid")
EVAL_FILE = "eval.json"
HELD_OUT_SEED = 1_000_003  # generated reference data never shares the training draw's seed


def spec_of(run: Run, data: str | None = None) -> str | None:
    """The data specification to compare a run with: ``data`` if given, else the run's own."""
    return data or run.config.get("cli", {}).get("data") or run.config.get("data", {}).get("spec")


def real_samples(run: Run, n: int, data: str | None = None, *, seed: int = 0) -> tuple[Tensor, Tensor | None, str]:
    """Two independent real samples ``(n, *D)`` (the reference and the floor's) and where they came from.

    ``data`` overrides the run's own data specification (e.g. a held-out test file). The floor's
    sample is None when a file holds fewer than 2n points.
    """
    spec = spec_of(run, data)
    if spec is None:
        raise UserError(f"{run.run_dir} does not record its data: pass --data with real samples to compare with")
    modality = run.modality
    if modality.fresh(spec):
        base = HELD_OUT_SEED + 2 * seed
        ref = modality.reference_points(run, spec, n=n, seed=base, own=data is None)
        floor = modality.reference_points(run, spec, n=n, seed=base + 1, own=data is None)
        return ref, floor, f"fresh draws of {spec} (not the training draw)"
    pts = modality.reference_points(run, spec, n=n, seed=seed, own=data is None)
    if tuple(pts.shape[1:]) != run.data_shape:
        raise UserError(f"{spec} holds points of shape {tuple(pts.shape[1:])}, the run's are {run.data_shape}")
    perm = torch.randperm(len(pts), generator=torch.Generator().manual_seed(HELD_OUT_SEED + seed))
    where = "held-out file" if data else "the training file (not held out)"
    if len(pts) < 2 * n:
        note = f"{len(pts)} points of {where}: fewer than 2 x {n}, so no noise floor"
        return pts[perm[:n]], None, note
    return pts[perm[:n]], pts[perm[n:2 * n]], f"two disjoint subsets of {where} {spec}"


def _unit_or_none(ext, x: Tensor | None) -> Tensor | None:  # noqa: ANN001
    return None if x is None else ext.from_unit(x)


def nll_summary(run: Run, x: Tensor, spec: str | None, *, solver: str = "rk4", steps: int = 64,
                divergence: str = "auto", seed: int = 0, dequantize: float = 0.0) -> dict:
    """Mean negative log-likelihood of points ``x: (N, *D)`` in nats and bits/dim, with its standard error.

    With ``dequantize = w > 0`` the points are taken to lie on a grid of spacing ``w`` (in data units):
    uniform noise on [0, w) is added and bits/dim includes the bin volume (an upper bound on the
    discrete model's bits/dim). Where the data law is known in closed form the exact value is given.
    """
    d = math.prod(run.data_shape)
    g = torch.Generator().manual_seed(seed)
    if dequantize > 0:
        x = x + dequantize * torch.rand(x.shape, generator=g)
    start = time.perf_counter()
    out = run.log_likelihood(x, solver=solver, steps=steps, divergence=divergence, seed=seed)
    seconds = time.perf_counter() - start
    nll = -out.log_prob.double()
    if not torch.isfinite(nll).all():
        raise UserError("the log-likelihood came out NaN/Inf: try more --steps or the dopri5 solver")
    bits = (nll + (d * math.log(dequantize) if dequantize > 0 else 0.0)) / (d * math.log(2))
    res = {
        "n": len(x), "nll_nats": float(nll.mean()), "nll_se": float(nll.std() / math.sqrt(len(x))),
        "bits_per_dim": float(bits.mean()), "dims": d, "dequantize": dequantize,
        "solver": solver, "steps": steps if solver != "dopri5" else None, "nfe": out.nfe,
        "divergence": divergence if divergence != "auto" else ("exact" if d <= 16 else "hutchinson"),
        "seconds": seconds, "true_nll_nats": None,
    }
    true = true_log_prob(spec, x) if spec else None
    if true is not None:
        res["true_nll_nats"] = float(-true.double().mean())
    return res


def evaluate_run(
    run: Run,
    *,
    n: int = 4000,
    metrics: Sequence[str] = ("w2", "mmd", "energy", "precision", "recall"),
    solver: str = "midpoint",
    steps: int = 8,
    grid: str = "uniform",
    data: str | None = None,
    seed: int = 0,
    nll_n: int = 1000,
    nll_solver: str = "rk4",
    nll_steps: int = 64,
    features: str | None = None,
    repeats: int = 3,
    guidance: float = 1.0,
    guidance_interval: tuple[float, float] | None = None,
) -> dict:
    """Sample ``n`` points and report each metric beside its floor (and the NLL when asked).

    Returns a JSON-ready dict: the run, its step, the sampler and NFE, the reference's origin,
    ``metrics`` (value, floor, ratio per name; for generated data, means and standard deviations
    over ``repeats`` independent (samples, reference, floor sample) triples, and each floor ratio's
    95 % interval over them), ``nll`` (see
    :func:`nll_summary`) and ``image`` (FID/KID with floors, from the extractor at ``features``;
    for a class-conditional run, from ``n / classes`` samples of each class drawn with classifier-free
    guidance ``guidance`` on t in ``guidance_interval`` (by default the modality's), with the extractor's
    accuracy on the asked-for classes).
    Image runs' samples live in [-1, 1] and are mapped to the extractor's units first.
    """
    names = check_metric_names(metrics, EVAL_METRICS)
    guidance_interval = guidance_interval or run.modality.guidance_interval
    sample_names = [m for m in names if m in SAMPLE_METRICS]
    image_names = [m for m in names if m in ("fid", "kid")]
    if image_names and features is None:
        raise UserError("fid/kid need a feature extractor: train one with 'noise2data features --data ... "
                        "--out FILE' and pass --features FILE")
    ref, floor_ref, origin = real_samples(run, n, data, seed=seed)
    result: dict = {"run": str(run.run_dir), "step": run.step, "n": n, "reference": origin,
                    "sampler": {"solver": solver, "steps": steps, "grid": grid}, "metrics": {}}
    out = None
    classes = int(run.config["model"].get("num_classes", 0) or 0)
    if sample_names or (image_names and not classes):
        start = time.perf_counter()
        out = run.sample(n, solver=solver, steps=steps, grid=grid, seed=seed)
        result["sampler"] |= {"nfe": out.nfe, "seconds": time.perf_counter() - start}
        if not torch.isfinite(out.x).all():
            raise UserError(f"sampling produced NaN/Inf ({solver}, {steps} steps): try more --steps or another solver")
        if sample_names:
            reps = [compare(out.x, ref, floor_ref, metrics=sample_names)]
            if run.modality.fresh(spec_of(run, data)):
                # fresh real data is free: repeat with new samples, reference and floor sample, since a
                # single pair moves by tens of percent from draw to draw (through the reference too)
                for i in range(1, repeats):
                    r_ref, r_floor, _ = real_samples(run, n, data, seed=seed + 1000 * i)
                    x = run.sample(n, solver=solver, steps=steps, grid=grid, seed=seed + 1000 * i).x
                    reps.append(compare(x, r_ref, r_floor, metrics=sample_names))
            result["metrics"] = {k: v.as_dict() for k, v in combine(reps).items()}
    if image_names:
        from .metrics.features import load_extractor
        from .metrics.fid import image_quality

        ext = load_extractor(features)
        if classes:  # class-conditional: as many samples of each class, and does each show its class?
            per = max(1, n // classes)
            labels = torch.arange(classes).repeat_interleave(per)
            outs = [run.sample(per, solver=solver, steps=steps, grid=grid, seed=seed + k, label=k, guidance=guidance,
                               guidance_interval=guidance_interval) for k in range(classes)]
            x = torch.cat([o.x for o in outs])
            result["sampler"].setdefault("nfe", outs[0].nfe)
            if outs[0].network_evals is not None:  # guided: the conditional and the null label per evaluation
                result["sampler"]["network_evals"] = outs[0].network_evals
            result["image"] = image_quality(ext, ext.from_unit(x), ext.from_unit(ref), _unit_or_none(ext, floor_ref),
                                            sample_labels=labels)
            result["image"]["guidance"] = guidance
            if interval_words(guidance_interval, guidance):  # guided on part of the way
                result["image"]["guidance_interval"] = list(guidance_interval)
        else:
            result["image"] = image_quality(ext, ext.from_unit(out.x), ext.from_unit(ref),
                                            _unit_or_none(ext, floor_ref))
    if "nll" in names:
        spec = data or run.config.get("cli", {}).get("data")
        held_out = ref[:nll_n] if floor_ref is None else floor_ref[:nll_n]
        result["nll"] = nll_summary(run, held_out, spec, solver=nll_solver, steps=nll_steps, seed=seed,
                                    dequantize=float(run.config["train"].get("dequantize", 0.0)))
    return result


def write_eval(run_dir: str | Path, result: dict, name: str = EVAL_FILE) -> Path:
    """Write ``result`` as JSON in the run folder (atomically); returns its path."""
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result)
    return path


def format_eval(result: dict) -> str:
    """The plain-text table the CLI prints."""
    s = result["sampler"]
    guided = f", {s['network_evals']} network evaluations in the guided class samples" if "network_evals" in s else ""
    lines = [f"{result['run']} at step {result['step']}: {result['n']} samples, {s['solver']} "
             f"{s['steps']} steps ({s.get('nfe', '-')} NFE{guided}); reference: {result['reference']}"]
    if result["metrics"]:
        lines.append(format_results({k: MetricResult(**{f: m[f] for f in MetricResult.__dataclass_fields__ if f in m})
                                     for k, m in result["metrics"].items()}))
    if "nll" in result:
        lines.append(format_nll(result["nll"]))
    if "image" in result:
        r = result["image"]
        floor = (f" (floor {r['fid_floor']:.4f} / {r['kid_floor']:.5f})" if "fid_floor" in r else "")
        acc = "unknown" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}"
        lines.append(f"FID {r['fid']:.4f}, KID {r['kid']:.5f}{floor} with {r['extractor']}, validation "
                     f"accuracy {acc}, data sha256 {r['data_sha256'][:12]}")
        if "class_accuracy" in r:
            during = interval_words(r.get("guidance_interval"), r["guidance"])
            lines.append(f"class accuracy {r['class_accuracy']:.4f}: the extractor's classes of {r['n']} samples, as "
                         f"many of each class (guidance {r['guidance']:g}{during}), against the classes asked for")
    return "\n".join(lines)


def format_nll(r: dict) -> str:
    """One line: NLL in nats with its standard error, bits/dim, and the exact value where known."""
    true = f"; exact {r['true_nll_nats']:.4f}" if r.get("true_nll_nats") is not None else ""
    return (f"nll {r['nll_nats']:.4f} +- {r['nll_se']:.4f} nats ({r['bits_per_dim']:.4f} bits/dim) on {r['n']} "
            f"held-out points{true}; {r['solver']}, {r['nfe']} NFE, {r['divergence']} divergence, "
            f"{r['seconds']:.1f} s")


def periodic_evaluator(out: Path, opts: dict, stats: Standardizer) -> Callable[[torch.nn.Module, int], dict]:
    """``evaluator(ema, step)`` for ``train``: sample metrics of the EMA model against real data.

    ``opts`` are the CLI's training options (``eval_metrics``, ``eval_n``, ``path``, ``objective``).
    """
    from .metrics import evaluate_pair
    from .paths import make_path
    from .run import read_run_config

    names = check_metric_names(opts["eval_metrics"].split(","))
    cfg = read_run_config(out)
    path = make_path(opts["path"])
    real: dict = {}  # the same real samples, and so one floor, at every evaluation: read them once

    def evaluate(ema: torch.nn.Module, step: int) -> dict[str, float]:
        run = Run(run_dir=out, config=cfg, model=ema, path=path, prediction=prediction_of(opts["objective"]),
                  standardizer=stats, step=step, device=next(ema.parameters()).device)
        if not real:
            ref, floor_ref, _ = real_samples(run, opts["eval_n"])
            floors = evaluate_pair(floor_ref, ref, names) if floor_ref is not None else {}
            real.update(ref=ref, floors={f"{k}_floor": v for k, v in floors.items()})
        res = compare(run.sample(opts["eval_n"], seed=step).x, real["ref"], metrics=names)
        return {k: v.value for k, v in res.items()} | real["floors"]

    return evaluate
