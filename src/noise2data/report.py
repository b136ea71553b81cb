"""One self-contained HTML report of a run: the page (title, training curves, configuration) is
shared; what it shows of the samples comes from the run's modality (:meth:`Modality.report`).
For vectors that is :func:`vector_report`: the metrics table with noise floors, samples beside
data, trajectories and quality against NFE, all with one floor estimate per metric.

Images are PNGs embedded as base64 data URIs, so the file can be mailed or archived alone. A
tiny script records on ``<body>`` how many images decoded (``data-images-loaded`` of
``data-images-total``), which the tests read back from headless Chromium.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import Tensor

from .errors import UserError
from .evaluation import EVAL_FILE, evaluate_run, real_samples
from .metrics import check_metric_names, evaluate_pair
from .metrics.compare import verdict
from .modalities.base import ReportRequest, Section
from .plotting import plot_quality_vs_nfe, plot_samples, plot_training_curves, plot_trajectories
from .run import Run, load_run
from .samplers import JUMP_SOLVERS, STAGES, solver_steps_for_nfe
from .training.logger import read_log

REPORT_FILE = "report.html"

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } .note { color: #666; font-size: 0.85em; }
pre { background: #f6f6f6; padding: 0.8em; font-size: 0.8em; overflow-x: auto; }
"""
LOAD_CHECK = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""


def png_data_uri(draw: Callable[[io.BytesIO], object]) -> str:
    """Render a plot into memory and return it as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    draw(buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def quality_vs_nfe(run: Run, *, n: int, metric: str, solvers: Sequence[str], nfes: Sequence[int],
                   seed: int = 0, real: tuple[Tensor, Tensor | None] | None = None, floor: float | None = None,
                   ) -> tuple[dict[str, list[tuple[int, float]]], float | None]:
    """``metric`` of samples against real data for each fixed-step solver at each NFE budget it can meet.

    ``real``: the (reference, floor sample) pair to use, if the caller has already loaded it;
    ``floor``: the floor to return, when the caller already has an estimate (the metrics table's),
    so that one report quotes one floor per metric.
    """
    check_metric_names([metric])
    ref, floor_ref = real if real is not None else real_samples(run, n, seed=seed)[:2]
    curves: dict[str, list[tuple[int, float]]] = {}
    for solver in solvers:
        if solver not in STAGES:
            raise UserError(f"quality-vs-NFE takes fixed-step solvers ({', '.join(STAGES)}), got '{solver}'")
        curves[solver] = []
        for nfe in nfes:
            steps = solver_steps_for_nfe(solver, nfe, strict=False)
            if steps is not None:
                x = run.sample(n, solver=solver, steps=steps, seed=seed).x
                curves[solver].append((nfe, evaluate_pair(x, ref, [metric])[metric]))
    if floor is None and floor_ref is not None:
        floor = evaluate_pair(floor_ref, ref, [metric])[metric]
    return curves, floor


def _metrics_table(result: dict) -> str:
    rows = []
    for m in result["metrics"].values():
        floor = f"{m['floor']:.4f}" if m["floor"] is not None else "-"
        if m.get("floor_sd") is not None:
            floor += f" &plusmn; {m['floor_sd']:.4f}"
        value = f"{m['value']:.4f}" + (f" &plusmn; {m['value_sd']:.4f}" if m.get("value_sd") is not None else "")
        ratio = f"{m['ratio']:.2f}x" if m["ratio"] is not None else "-"
        if m.get("ratio_low") is not None:
            ratio += f" [{m['ratio_low']:.2f}, {m['ratio_high']:.2f}]"
        better = "higher" if m["higher_is_better"] else "lower"
        note = f"[{m['ci_low']:.4f}, {m['ci_high']:.4f}] " if m.get("ci_low") is not None else ""
        note += verdict(m)
        rows.append(f"<tr><td>{m['name']}</td><td class=num>{value}</td><td class=num>{floor}</td>"
                    f"<td class=num>{ratio}</td><td>{better}</td><td>{note}</td></tr>")
    s = result["sampler"]
    out = (f"<p>{result['n']} samples, {html.escape(s['solver'])} with {s['steps']} steps "
           f"({s.get('nfe', '-')} NFE) at step {result['step']}; reference: {html.escape(result['reference'])}. "
           "The floor is the same metric between two independent real samples of the same size; a value at or "
           "beyond it is within sampling noise, not better than data. Debiased distances (energy_u, mmd2_u) are 0 "
           "for equal laws and carry a 95% interval.</p>"
           "<table><tr><th>metric</th><th>value</th><th>noise floor</th><th>value / floor</th><th>better</th>"
           "<th>95% interval / verdict</th></tr>"
           + "".join(rows) + "</table>")
    if "nll" in result:
        r = result["nll"]
        exact = f"; exact value {r['true_nll_nats']:.4f} nats" if r.get("true_nll_nats") is not None else ""
        out += (f"<p>Negative log-likelihood of {r['n']} held-out points: <b>{r['nll_nats']:.4f} &plusmn; "
                f"{r['nll_se']:.4f} nats</b> ({r['bits_per_dim']:.4f} bits/dim){exact}; {r['solver']}, "
                f"{r['nfe']} NFE, {r['divergence']} divergence.</p>")
    return out


def vector_report(run: Run, request: ReportRequest) -> list[Section]:
    """Metrics table, samples beside data, trajectories and quality against NFE of a dense-tensor run.

    The table is the run's ``eval.json`` when it is of the current step (from ``noise2data eval``),
    else a fresh evaluation with ``request.n`` samples (``request.solver`` at ``request.nfe`` evaluations; NLL up
    to 16 dimensions). The
    quality-vs-NFE curves use the table's sample size and, for a metric of the table, its floor.
    """
    d = math.prod(run.data_shape)
    eval_file = run.run_dir / EVAL_FILE
    stored = json.loads(eval_file.read_text()) if eval_file.is_file() else None
    if stored is not None and stored.get("step") == run.step and stored.get("metrics"):
        result, source = stored, f"from {EVAL_FILE}"
    else:  # none, or one made at another step: it would not describe these weights
        metrics = list(run.modality.default_metrics) + (["nll"] if d <= 16 else [])
        result = evaluate_run(run, n=request.n, metrics=metrics, seed=request.seed, nll_n=min(request.n, 1000),
                              solver=request.solver, steps=solver_steps_for_nfe(request.solver, request.nfe))
        source = "computed for this report"
    n = int(result["n"])
    ref, floor_ref, _ = real_samples(run, n, seed=request.seed)
    sample = run.sample(n, solver=result["sampler"]["solver"], steps=result["sampler"]["steps"], seed=request.seed)
    traj = run.sample(min(n, 300), solver="midpoint", steps=32, seed=request.seed + 1, trajectory=True)
    table_floor = result["metrics"].get(request.metric, {}).get("floor")
    solvers = (*request.solvers, *(s for s in JUMP_SOLVERS if run.jumps and s not in request.solvers))
    curves, floor = quality_vs_nfe(run, n=n, metric=request.metric, solvers=solvers, nfes=request.nfes,
                                   seed=request.seed, real=(ref, floor_ref), floor=table_floor)
    title = f"{result['sampler']['solver']}, {sample.nfe} NFE"

    def cell(pts: list[tuple[int, float]], k: int) -> str:
        return f"<td class=num>{dict(pts)[k]:.4f}</td>" if k in dict(pts) else "<td class=num>-</td>"

    nfes = request.nfes
    nfe_rows = "".join(f"<tr><td>{s}</td>" + "".join(cell(pts, k) for k in nfes) + "</tr>" for s, pts in curves.items())
    nfe_table = ("<table><tr><th>solver</th>" + "".join(f"<th>NFE {k}</th>" for k in nfes) + "</tr>" + nfe_rows
                 + "</table>" + (f"<p class=note>noise floor {floor:.4f}</p>" if floor is not None else ""))
    return [
        Section(f"Metrics ({source})", _metrics_table(result)),
        Section("Samples beside data", _img("Samples beside data",
                                            lambda f: plot_samples(sample.x, ref, f, title=title))),
        Section("Trajectories from noise to data",
                _img("Trajectories from noise to data", lambda f: plot_trajectories(traj.trajectory, traj.times, f))),
        Section(f"Quality against NFE ({request.metric}, {n} samples)",
                _img("Quality against NFE", lambda f: plot_quality_vs_nfe(curves, floor, request.metric, f))
                + nfe_table),
    ]


def _img(alt: str, draw: Callable[[io.BytesIO], object]) -> str:
    return f"<img alt=\"{html.escape(alt)}\" src=\"{png_data_uri(draw)}\">"


def build_report(run_dir: str | Path, request: ReportRequest | None = None, *, out: str | Path | None = None,
                 device: str = "cpu") -> Path:
    """Write ``RUN/report.html`` (or ``out``) and return its path: the modality's sections between the
    training curves and the configuration."""
    start = time.perf_counter()
    request = request or ReportRequest()
    run = load_run(run_dir, device=device)
    sections = run.modality.report(run, request)
    loss_rows, eval_rows = read_log(run.run_dir)
    if loss_rows:
        sections.insert(1, Section("Training curves", _img("Training curves",
                                                          lambda f: plot_training_curves(loss_rows, eval_rows, f))))
    body = [f"<h1>noise2data run {html.escape(str(run.run_dir))}</h1>",
            f"<p class=note>{html.escape(run.modality.name)}, step {run.step}, data shape {run.data_shape}, report "
            f"written {time.strftime('%Y-%m-%d %H:%M:%S')} in {{seconds}} s</p>"]
    body += [f"<h2>{html.escape(s.title)}</h2>{s.html}" for s in sections]
    body.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(run.config, indent=2)) + "</pre>")
    text = "\n".join(body).replace("{seconds}", f"{time.perf_counter() - start:.1f}")
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>noise2data report: "
            f"{html.escape(run.run_dir.name)}</title><style>{STYLE}</style>{LOAD_CHECK}</head>"
            f"<body>{text}</body></html>")
    out_path = Path(out) if out else run.run_dir / REPORT_FILE
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(out_path)
    return out_path
