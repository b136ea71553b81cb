"""Moving MNIST on a CPU budget: prediction, interpolation and generation with one frame-masked model.

1. Makes Moving MNIST (one digit, 32x32, 16 frames, grey): ``--n-train`` training clips from MNIST's
   training digits and ``--n-test`` test clips from its test digits (``noise2data data moving-mnist``).
2. Trains the judges offline on the training clips: a classifier of their digits, cut out at the clips' own
   scale (``noise2data features --data video:FILE``), for digit identity, and a 3-D CNN (``features --video``)
   for the Frechet distance.
3. Trains the tiny video U-Net for ``--minutes`` of wall clock (``train --minutes``: the clock ends the run
   and drives the learning rate's cosine).
4. ``noise2data eval`` on the test clips: prediction (4 known -> 12; ``--context-frames``), interpolation
   (first and last known), generation, each metric beside its floor or the copy-the-known-frame baseline.
5. Writes GIFs (and PNG strips) of predictions, interpolations and generated clips to docs/images.
6. A shorter RGB run (``--color``) shows the same pipeline on three channels.

Generation is scored twice: clips drawn whole, and (``--lead-frames K``, default 4 as ``sample``; 0: not) their
first K frames with the rest continued from them as a prediction (``sample``'s default for clips from nothing).

``--samplers euler:2,euler:4`` also evaluates the grey run with those solvers and steps (rows of the same
table); ``--reuse-evals`` keeps evaluations already written for the same step and sampler, so that adding a
sampler to a finished run costs only its own evaluation.

``--ablation default,lr2e-3,batch8,...`` instead trains one short run per variant (each for
``--ablation-minutes`` of wall clock, or ``--ablation-steps``) and prints their prediction and interpolation
scores side by side: changes to the preset (distance, no-fill, tattn8, positions, space-time, positions8,
motion, no-motion, residual, residual-ahead, gate, no-gate) or to the training flags (lr2e-3, lr4e-3, batch8,
logit-normal);
``VARIANTS`` below lists them.

On a GPU, OpenSTL's Moving MNIST protocol (two digits, 64x64, 10 known -> 10 predicted), beside the
SSIM / MSE of ConvLSTM and PhyDNet as OpenSTL publishes them (their test set is the fixed
mnist_test_seq.npy; ours is made by the same definition from MNIST's test digits). Digit identity, centres
and the 3-D CNN's Frechet distance need one digit per clip, so they are left out here:

    python benchmarks/video.py --mnist DIR --device cuda --digits 2 --size 64 --frames 20 --context-frames 10 \
        --n-train 10000 --preset small --minutes 6 --color-minutes 0 --threads 8

Run alone: two PyTorch jobs on 2 cores slow each other by up to 25x.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from noise2data.cli import main as cli
from noise2data.errors import UserError
from noise2data.video import model as video_model
from noise2data.video.data import load_video
from noise2data.video.evaluation import parse_sampler
from noise2data.video.sampling import KNOWN_GUIDANCE, sampler_words

VARIANTS = {  # changes measured by --ablation ("default" is the preset and the benchmark's flags as they stand):
    # (changes to the preset, extra flags of `train`, which win over the benchmark's own)
    "default": ({}, []),
    "distance": ({"known_distance": True}, []),  # planes saying how far the previous and next known frames are
    "no-fill": ({"fill_known": False}, []),  # no copy of the nearest known frame at every frame
    "tattn8": ({"temporal_attention_resolution": 8}, []),  # attention across frames at 8x8 positions too
    "positions": ({"positions": True}, []),  # attention sees each position's row, column and frame
    "space-time": ({"positions": True, "space_time": True}, []),  # one attention over all frames' 4x4 positions
    "positions8": ({"positions": True, "attention_resolution": 8}, []),  # attention with positions at 8x8 too
    "motion": ({"motion_fill": True}, []),  # also the nearest known frame moved along the known frames' motion
    "no-motion": ({"motion_fill": False}, []),  # the preset before motion_fill
    # the moved known frame plus a correction
    "residual": ({"motion_residual": True, "motion_gate": False, "motion_warp": False}, []),
    # only after the last known frame
    "residual-ahead": ({"motion_residual": True, "residual_ahead": True, "motion_gate": False,
                        "motion_warp": False}, []),
    # a learned per-pixel blend of the moved known frame and the drawing (as measured: last-pair velocity, no bounce)
    "gate": ({"motion_gate": True, "steady_velocity": False, "bounce": False, "steady_speed": False}, []),
    "no-gate": ({"motion_gate": False, "motion_warp": False}, []),  # the preset before motion_gate
    "warp": ({"motion_gate": True, "motion_warp": True}, []),  # the gate lets through the known frame moved as
    # the network says (a learned mixture of whole-pixel moves, starting at the estimated motion)
    "steady": ({"steady_velocity": True, "bounce": False, "steady_speed": False}, []),  # the moved frame at the
    # velocity averaged over the known pairs (as measured: no bounce, no speed)
    "last-pair": ({"steady_velocity": False}, []),  # ... at the last known pair's velocity
    # ... reflected, beyond the known frames, where content turns back in the training clips (motion.content_walls;
    # as measured, and the two gate-open variants too: without the speed)
    "bounce": ({"bounce": True, "steady_speed": False}, []),
    "no-bounce": ({"bounce": False}, []),
    "gate-open": ({"gate_bias": 2.0, "steady_speed": False}, []),  # the gate starts at 88% of the moved frame
    "gate-open4": ({"gate_bias": 4.0, "steady_speed": False}, []),  # ... at 98% of it
    # ... moving at the one speed of the training clips (motion.content_speed): beyond the known frames, and between
    # them along the path that bounces from one to the next (measured at 600 steps before the latter was added)
    "speed": ({"steady_speed": True}, []),
    "no-speed": ({"steady_speed": False}, []),
    "gate-open4-speed": ({"gate_bias": 4.0}, []),  # the gate starts at 98% of the moved frame, with the speed
    "lr2e-3": ({}, ["--lr", "2e-3"]),  # the learning rate, 2x and 4x the video default
    "lr4e-3": ({}, ["--lr", "4e-3"]),
    "batch8": ({}, ["--batch-size", "8"]),  # half the clips per step, about twice the steps
    "logit-normal": ({}, ["--time-dist", "logit_normal"]),  # training times concentrated mid-path
}
OTHER_SAMPLERS = " (rows named by a solver and its steps: the grey run's weights sampled with it)"
OPENSTL = {"ConvLSTM": (0.878, 46.3), "PhyDNet": (0.917, 35.7)}  # SSIM, MSE: OpenSTL's table, 2 digits 10 -> 10


@contextlib.contextmanager
def preset_variant(preset: str, changes: dict) -> Iterator[None]:
    """Train with the preset changed (the run stores its own model config, so eval needs nothing)."""
    saved = video_model.PRESETS[preset]
    video_model.PRESETS[preset] = {**saved, **changes}
    try:
        yield
    finally:
        video_model.PRESETS[preset] = saved


def run_cli(argv: list[str]) -> None:
    code = cli(argv)
    if code:
        raise SystemExit(f"noise2data {' '.join(argv[:2])} failed ({code})")


def make_data(args: argparse.Namespace, out: Path, color: bool, n_train: int) -> tuple[Path, Path]:
    tag = "rgb" if color else "grey"
    paths = out / f"mm_{tag}_train.npz", out / f"mm_{tag}_test.npz"
    for path, split, n, seed in ((paths[0], "train", n_train, 0), (paths[1], "test", args.n_test, 1)):
        if not path.exists():
            run_cli(["data", "moving-mnist", "--mnist", args.mnist, "--split", split, "--n", str(n), "--frames",
                     str(args.frames), "--size", str(args.size), "--digits", str(args.digits), "--seed", str(seed),
                     "--out", str(path),
                     *(["--color"] if color else [])])
    return paths


def train_and_eval(args: argparse.Namespace, out: Path, name: str, train: Path, test: Path, minutes: float,
                   judges: list[str], eval_n: int | None = None, best_of: int | None = None,
                   extra: tuple[str, ...] = (), sampler: tuple[str, int] | None = None,
                   train_steps: int | None = None) -> dict:
    """Train ``run_NAME`` (unless it was, ``bench_train.json``) and evaluate it with the benchmark's sampler or
    ``sampler = (solver, steps)`` (then into ``eval_NAME_SOLVER_STEPS.json``); ``train_steps`` trains for so many
    steps instead of ``minutes`` (the learning rate's cosine then runs over the steps)."""
    run = out / f"run_{name}"
    if not (run / "bench_train.json").exists():
        info: dict = {"shape": list(load_video(train).clips.shape[1:])}  # read only when it trains
        start = time.perf_counter()
        budget = ["--steps", str(train_steps)] if train_steps else ["--minutes", str(minutes)]
        run_cli(["train", "--data", f"video:{train}", "--preset", args.preset, *budget,
                 "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--checkpoint-every", "500",
                 "--device", args.device, "--no-progress", "--out", str(run), *extra,
                 *(["--resume"] if (run / "checkpoints").exists() else [])])
        steps = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]
        secs = time.perf_counter() - start
        info |= {"steps": steps, "train_seconds": secs, "measured_step_seconds": secs / steps}
        (run / "bench_train.json").write_text(json.dumps(info))
    info = json.loads((run / "bench_train.json").read_text())
    solver, steps = sampler or (args.solver, args.sample_steps)
    result_file = out / (f"eval_{name}_{solver}_{steps}.json" if sampler else f"eval_{name}.json")
    known_spec = "" if sampler else args.known_sampler  # a --samplers row is that sampler for every task
    known = dict(zip(("solver", "steps", "grid"), known_sampler(known_spec), strict=True)) if known_spec else None
    lead = ["--lead-frames", str(args.lead_frames)]
    if args.reuse_evals and result_file.exists():
        stored = json.loads(result_file.read_text())
        same = {"solver": solver, "steps": steps, "best_of": best_of or args.best_of}
        stored_lead = stored["metrics"].get("generation_lead", {}).get("lead_frames", 0)
        if (stored["step"] == info["steps"] and stored["n"] == (eval_n or args.eval_n) and stored["sampler"] == same
                and stored.get("known_sampler") == known and judged_by(stored, judges)
                and stored_lead == args.lead_frames and stored.get("known_guidance", 1.0) == known_guidance(args)):
            print(f"reused {result_file} (--reuse-evals)")
            return {"train": info, "eval": stored}
    start = time.perf_counter()
    run_cli(["eval", str(run), "--data", f"video:{test}", "--n", str(eval_n or args.eval_n),
             "--best-of", str(best_of or args.best_of), "--context-frames", str(context_frames(args)),
             "--device", args.device, "--solver", solver,
             "--steps", str(steps), *judges, *(["--known-sampler", known_spec] if known_spec else []), *lead,
             *guidance_flags(args), "--out", str(result_file)])
    info["eval_seconds"] = time.perf_counter() - start
    return {"train": info, "eval": json.loads(result_file.read_text())}


def judged_by(stored: dict, judges: list[str]) -> bool:
    """Whether an evaluation was made with the identity judge of ``judges`` (``--classifier FILE``), by the hash
    of the data it was trained on (an evaluation from another judge is not reused)."""
    if "--classifier" not in judges:
        return stored.get("classifier") is None
    meta = Path(judges[judges.index("--classifier") + 1] + ".json")
    want = json.loads(meta.read_text())["data_sha256"] if meta.exists() else None
    return (stored.get("classifier") or {}).get("data_sha256") == want


def parse_samplers(spec: str, flag: str = "--solver/--sample-steps or --samplers") -> list[tuple[str, int]]:
    """``"euler:2,heun:4"`` -> ``[("euler", 2), ("heun", 4)]``; a bad one ends the benchmark with eval's message."""
    try:
        return [parse_sampler(v, flag)[:2] for v in spec.split(",") if v.strip()]
    except UserError as err:
        raise SystemExit(str(err)) from None


def known_sampler(spec: str) -> tuple[str, int, str]:
    """``--known-sampler euler:2:refine`` -> ``("euler", 2, "refine")`` (one sampler: "euler:2,euler:4" is
    refused; the grid is uniform unless given)."""
    try:
        return parse_sampler(spec)
    except UserError as err:
        raise SystemExit(str(err)) from None


def known_guidance(args: argparse.Namespace) -> float:
    """The guidance over the known frames that eval uses: ``--known-guidance`` or the library's default."""
    return KNOWN_GUIDANCE if args.known_guidance is None else args.known_guidance


def guidance_flags(args: argparse.Namespace) -> list[str]:
    """``--guidance W`` for eval and sample where ``--known-guidance`` is given (else the library's default)."""
    return [] if args.known_guidance is None else ["--guidance", str(args.known_guidance)]


def sampler_text(args: argparse.Namespace) -> str:
    known = f"{sampler_words(known_sampler(args.known_sampler))} for prediction and interpolation, " \
        if args.known_sampler else ""
    return (f"{known}{args.solver} {args.sample_steps} steps{' for generation' if known else ''}; guidance "
            f"{known_guidance(args):g} over the known frames")


def context_frames(args: argparse.Namespace) -> int:
    return args.context_frames or max(1, args.frames // 4)


def pictures(args: argparse.Namespace, run: Path, test: Path, tag: str) -> None:
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    solver, steps = args.solver, args.sample_steps
    known_solver, known_steps, known_grid = (known_sampler(args.known_sampler) if args.known_sampler
                                             else (solver, steps, "uniform"))
    k = context_frames(args)
    lead = (("generation_lead", ["--lead-frames", str(args.lead_frames)]),) if args.lead_frames else ()
    samplers = {"generation": ["--solver", solver, "--steps", str(steps)],
                "generation_lead": []}  # as eval: the run's default sampler, then Euler 2 after the lead frames
    for what, extra in (("prediction", ["--context", str(test), "--context-frames", str(k)]),
                        ("interpolation", ["--context", str(test), "--known", f"0,{args.frames - 1}"]),
                        ("generation", ["--lead-frames", "0"]), *lead):  # drawn whole, and in two stages
        sampler = samplers.get(what, ["--solver", known_solver, "--steps", str(known_steps), "--grid", known_grid])
        for suffix in (".gif", ".png"):
            target = docs / f"video_{tag}_{what}{suffix}"
            run_cli(["sample", str(run), "--n", "8", *sampler, *guidance_flags(args), "--seed", "0",
                     "--device", args.device, *extra, "--out", str(target)])


def moved(task: dict, metric: str, which: str = "moved") -> float:
    """The moved-copy baseline's mean (``which="bounced"``: reflected at the run's walls; nan in results written
    before it was measured, or of runs that do not bounce)."""
    return task.get(f"{which}_{metric}", {}).get("mean", float("nan"))


def row(name: str, r: dict) -> str:
    m = r["eval"]["metrics"]
    p, i, g = m["prediction"], m["interpolation"], m["generation"]
    ident = f"{p.get('identity_kept', float('nan')):.3f}/{p.get('identity_true', float('nan')):.3f}"
    return (f"{name:<10} {r['train']['steps']:>6} {r['train']['train_seconds'] / 60:>6.1f} "
            f"{p['ssim']['mean']:>7.4f} {p['ssim_best']:>7.4f} {p['baseline_ssim']['mean']:>7.4f} "
            f"{moved(p, 'ssim'):>7.4f} "
            f"{p['psnr']['mean']:>6.2f} {p['baseline_psnr']['mean']:>6.2f} {moved(p, 'psnr'):>6.2f} "
            f"{p['mse']['mean']:>6.1f} {p['baseline_mse']['mean']:>6.1f} "
            f"{p.get('centre_error', {}).get('mean', float('nan')):>6.2f} "
            f"{p.get('baseline_centre_error', {}).get('mean', float('nan')):>6.2f} "
            f"{moved(p, 'centre_error'):>6.2f} {ident:>11} "
            f"{i['ssim']['mean']:>7.4f} {i['baseline_ssim']['mean']:>7.4f} {moved(i, 'ssim'):>7.4f} "
            f"{g['speed_w1']:>6.3f} {g['speed_w1_floor']:>6.3f} {g.get('identity_kept', float('nan')):>6.3f} "
            f"{g.get('fvd', float('nan')):>8.2f} {g.get('fvd_floor', float('nan')):>8.2f} "
            f"{p['seconds_per_clip']:>6.2f}")


def ablation(args: argparse.Namespace, out: Path, train: Path, test: Path, judges: list[str]) -> None:
    names = [v.strip() for v in args.ablation.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown ablation variant(s) {', '.join(unknown)}: expected some of {', '.join(VARIANTS)}")
    results = {}
    for name in names:
        changes, flags = VARIANTS[name]
        with preset_variant(args.preset, changes):
            tag = f"ablation_{name}" + (f"_s{args.ablation_steps}" if args.ablation_steps else "")
            results[name] = train_and_eval(args, out, tag, train, test, args.ablation_minutes, judges,
                                           args.ablation_eval_n, args.ablation_best_of, tuple(flags),
                                           train_steps=args.ablation_steps)
    k = context_frames(args)
    budget = f"{args.ablation_steps} steps" if args.ablation_steps else f"{args.ablation_minutes:g} min"
    print(f"\nablation of the {args.preset} preset, {budget} each; {args.ablation_eval_n} test "
          f"clips; {k} known -> {args.frames - k}; {sampler_text(args)}; best of "
          f"{args.ablation_best_of}")
    print(f"{'variant':<16} {'steps':>6} {'s/step':>7} {'SSIM':>7} {'copy':>7} {'moved':>7} {'bounced':>7} "
          f"{'PSNR':>6} {'copy':>6} "
          f"{'ctr px':>6} {'copy':>6} {'ident':>6} {'iSSIM':>7} {'copy':>7} {'gIdent':>6} {'spdW1':>6}")
    for name, r in results.items():
        m, tr = r["eval"]["metrics"], r["train"]
        p, i, g = m["prediction"], m["interpolation"], m["generation"]
        print(f"{name:<16} {tr['steps']:>6} {tr['measured_step_seconds']:>7.3f} {p['ssim']['mean']:>7.4f} "
              f"{p['baseline_ssim']['mean']:>7.4f} {moved(p, 'ssim'):>7.4f} {moved(p, 'ssim', 'bounced'):>7.4f} "
              f"{p['psnr']['mean']:>6.2f} "
              f"{p['baseline_psnr']['mean']:>6.2f} "
              f"{p.get('centre_error', {}).get('mean', float('nan')):>6.2f} "
              f"{p.get('baseline_centre_error', {}).get('mean', float('nan')):>6.2f} "
              f"{p.get('identity_kept', float('nan')):>6.3f} {i['ssim']['mean']:>7.4f} "
              f"{i['baseline_ssim']['mean']:>7.4f} "
              f"{g.get('identity_kept', float('nan')):>6.3f} {g['speed_w1']:>6.3f}")
    (out / "ablation.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out / 'ablation.json'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", required=True, help="folder of the MNIST IDX files")
    p.add_argument("--minutes", type=float, default=30.0, help="training budget of the grey run (wall clock)")
    p.add_argument("--color-minutes", type=float, default=5.0, help="training budget of the RGB run (0: skip)")
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--digits", type=int, default=1, help="digits per clip (identity, centres and FVD need 1)")
    p.add_argument("--context-frames", type=int, help="frames given for prediction (default a quarter of --frames)")
    p.add_argument("--device", default="cpu", help="training and sampling device (cpu, cuda)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-n", type=int, default=200, help="test clips scored per task")
    p.add_argument("--best-of", type=int, default=4)
    p.add_argument("--solver", default="midpoint", help="eval's ODE solver (midpoint: 2 NFE per step)")
    p.add_argument("--sample-steps", type=int, default=8, help="the solver's steps")
    p.add_argument("--lead-frames", type=int, default=4, help="score generation drawn whole and in two stages: the "
                   "first K frames of clips drawn whole, the rest continued from them (as sample; 0: drawn whole only)")
    p.add_argument("--known-sampler", default="", help="SOLVER:STEPS[:GRID] for prediction and interpolation "
                   "(eval's --known-sampler; default --solver and --sample-steps), e.g. euler:2:refine (the "
                   "library's default for clips with known frames)")
    p.add_argument("--known-guidance", type=float, help="guidance over the known frames (eval's and sample's "
                   f"--guidance; default the library's, {KNOWN_GUIDANCE:g})")
    p.add_argument("--samplers", default="", help="also evaluate the grey run with each SOLVER:STEPS, e.g. "
                   "euler:2,euler:4 (rows of the same table)")
    p.add_argument("--reuse-evals", action="store_true", help="keep an eval_*.json already written for the same "
                   "step and sampler (after a change to eval, leave it off)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ablation", help="variants of the preset to compare instead of the main runs: "
                   + ", ".join(VARIANTS))
    p.add_argument("--ablation-minutes", type=float, default=8.0, help="training budget of each ablation run")
    p.add_argument("--ablation-steps", type=int, help="train each ablation run for this many steps instead (equal "
                   "steps whatever the machine's speed; runs named ablation_VARIANT_sSTEPS)")
    p.add_argument("--ablation-eval-n", type=int, default=100, help="test clips scored per task in the ablation")
    p.add_argument("--ablation-best-of", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/video")
    p.add_argument("--docs", default="docs/images")
    args = p.parse_args()
    samplers = parse_samplers(f"{args.solver}:{args.sample_steps},{args.samplers}")[1:]  # checked before any work
    if args.known_sampler:
        known_sampler(args.known_sampler)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = make_data(args, out, False, args.n_train)
    classifier, fx3d = out / "digit_judge.safetensors", out / "video_features.safetensors"
    judges: list[str] = []
    if args.digits == 1:  # the judges read one digit per frame
        if not classifier.exists():
            run_cli(["features", "--data", f"video:{train}", "--epochs", "2", "--out", str(classifier)])
        if not fx3d.exists():
            run_cli(["features", "--video", "--data", f"video:{train}", "--epochs", "1", "--out", str(fx3d)])
        judges = ["--classifier", str(classifier), "--features", str(fx3d)]
    if args.ablation:
        return ablation(args, out, train, test, judges)
    results = {"grey": train_and_eval(args, out, "grey", train, test, args.minutes, judges)}
    for solver, steps in samplers:  # the same weights, other samplers
        results[f"{solver}{steps}"] = train_and_eval(args, out, "grey", train, test, args.minutes, judges,
                                                     sampler=(solver, steps))
    pictures(args, out / "run_grey", test, "grey")
    if args.color_minutes > 0:
        ctrain, ctest = make_data(args, out, True, args.n_train // 4)
        results["rgb"] = train_and_eval(args, out, "rgb", ctrain, ctest, args.color_minutes, judges[:2])
        pictures(args, out / "run_rgb", ctest, "rgb")
    k = context_frames(args)
    print(f"\nMoving MNIST, {args.digits} digit(s), {args.size}x{args.size}, {args.frames} frames; {args.preset} "
          f"preset on {args.device}; {args.eval_n} test clips per task; "
          f"{sampler_text(args)}{OTHER_SAMPLERS if samplers else ''}; prediction: {k} known -> "
          f"{args.frames - k}; best of {args.best_of}; MSE: squared error summed over a frame's pixels in [0, 1]")
    print("baselines: copy the last known frame (prediction) or the nearer known frame (interpolation); moved: the "
          "nearest known frame moved along the known frames' estimated motion; floors: two disjoint sets of real "
          "test clips")
    print(f"{'run':<10} {'steps':>6} {'min':>6} {'SSIM':>7} {'best':>7} {'copy':>7} {'moved':>7} {'PSNR':>6} "
          f"{'copy':>6} {'moved':>6} {'MSE':>6} {'copy':>6} {'ctr px':>6} {'copy':>6} {'moved':>6} {'ident/true':>11} "
          f"{'iSSIM':>7} {'copy':>7} {'moved':>7} {'spdW1':>6} {'floor':>6} "
          f"{'gIdent':>6} {'FVD':>8} {'floor':>8} {'s/clip':>6}")
    for name, r in results.items():
        print(row(name, r))
    for name, r in results.items():
        for key in ("generation", "generation_lead"):
            g = r["eval"]["metrics"].get(key)
            if g is None:
                continue
            how = f" (the first {g['lead_frames']} frames drawn, the rest continued)" if "lead_frames" in g else ""
            print(f"{name}: generated{how}: speed W1 {g['speed_w1']:.3f} (floor {g['speed_w1_floor']:.3f}), identity "
                  f"kept {g.get('identity_kept', float('nan')):.3f} (real clips "
                  f"{g.get('real_identity_kept', float('nan')):.3f}), FVD {g.get('fvd', float('nan')):.2f} (floor "
                  f"{g.get('fvd_floor', float('nan')):.2f}); mean speed {g['speed_mean']:.2f} px/frame (real "
                  f"{g['real_speed_mean']:.2f})")
    if args.digits == 2 and args.size == 64 and args.frames == 20 and k == 10:
        print("OpenSTL's table (2 digits, 64x64, 10 -> 10, mean over the 10 predicted frames): "
              + "; ".join(f"{m} SSIM {s:.3f} / MSE {e:.1f}" for m, (s, e) in OPENSTL.items()))
    (out / "video.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out / 'video.json'}")


if __name__ == "__main__":
    main()
