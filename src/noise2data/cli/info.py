"""The ``info`` command: what a run folder holds, from its files alone (no network is built or loaded).

It reads config.json, metrics.jsonl, the checkpoints' folders and safetensors headers, and eval.json,
and asks the run's modality only to format its own evaluation.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .train_options import TIME_BUDGET_STEP_CAP

DERIVED = ("distill", "reflow")  # config.json sections of runs made from another run (noise2data.lineage)


def add_info_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="what a run holds: data, model, training, progress, checkpoints, last eval")
    p.add_argument("run", help="run folder")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of text")


def parameter_count(checkpoint: Path) -> int | None:
    """Numbers in the network's weights (``model.safetensors``), read from the file's header only."""
    from safetensors import safe_open

    path = checkpoint / "model.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), framework="np") as f:
        return sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())  # noqa: SIM118 - not a mapping


def run_info(run_dir: str | Path) -> dict:
    """A JSON-ready summary of the run in ``run_dir``."""
    from ..modalities import modality_of
    from ..run import default_solver, read_run_config
    from ..training import checkpoint_step, latest_checkpoint, list_checkpoints
    from ..training.logger import read_log

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)  # one line for a missing or broken run folder
    train, data = cfg.get("train", {}), cfg.get("data", {})
    checkpoints = [checkpoint_step(p) for p in list_checkpoints(run_dir)]
    newest = latest_checkpoint(run_dir) if checkpoints else None
    losses, _ = read_log(run_dir)
    modality = modality_of(cfg)
    info = {
        "run": str(run_dir), "modality": modality.name, "version": cfg.get("noise2data_version"),
        "data": {k: data.get(k) for k in ("spec", "shape", "n", "standardize", "num_classes", "cond_dim")},
        "model": {"name": cfg.get("model", {}).get("name"),
                  "parameters": parameter_count(newest) if newest is not None else None},
        "path": cfg.get("path", {}).get("name"),
        "train": {k: train.get(k) for k in ("objective", "coupling", "batch_size", "lr", "lr_schedule",
                                             "warmup_steps", "ema_decay", "label_dropout", "steps", "minutes")},
        "derived_from": next(({"how": k, **cfg[k]} for k in DERIVED if isinstance(cfg.get(k), dict)), None),
        "step": checkpoint_step(newest) if newest is not None else 0,
        "checkpoints": checkpoints,
        "last_loss": {k: losses[-1].get(k) for k in ("step", "loss", "steps_per_sec")} if losses else None,
        "default_solver": default_solver(cfg),
        "guidance_interval": list(modality.guidance_interval),
    }
    if info["train"]["steps"] == TIME_BUDGET_STEP_CAP:
        info["train"]["steps"] = None  # the clock ends the run
    eval_file = run_dir / "eval.json"
    if eval_file.is_file():
        try:
            info["eval"] = json.loads(eval_file.read_text())
        except json.JSONDecodeError:
            info["eval"] = None
    return info


def format_info(info: dict) -> str:
    """The text ``info`` prints."""
    d, t = info["data"], info["train"]
    shape = tuple(d["shape"]) if d.get("shape") is not None else "?"
    cond = (f"{d['num_classes']} classes" if d.get("num_classes") else
            f"vectors of {d['cond_dim']} numbers" if d.get("cond_dim") else "none")
    if cond != "none" and t.get("label_dropout"):
        cond += f" (dropped with probability {t['label_dropout']:g} for guidance)"
    params = f", {info['model']['parameters']:,} parameters" if info["model"]["parameters"] else ""
    target = (f"{t['steps']:,}" if t.get("steps") else f"{t.get('minutes') or 0:g} minutes")
    done = t.get("steps") is not None and info["step"] >= t["steps"]
    lines = [
        f"{info['run']}: {info['modality']} run (noise2data {info['version']})",
        f"data         {d.get('spec')}: {d.get('n') or 0:,} samples of shape {shape}, standardize "
        f"{d.get('standardize')}",
        f"condition    {cond}",
        f"model        {info['model']['name']}{params}",
        f"training     {t.get('objective')} objective on the {info['path']} path, {t.get('coupling')} coupling, batch "
        f"{t.get('batch_size')}, lr {t.get('lr'):g} ({t.get('lr_schedule')}, {t.get('warmup_steps')} warm-up steps), "
        f"EMA {t.get('ema_decay'):g}",
    ]
    if info["derived_from"]:
        src = info["derived_from"]
        lines.append(f"made by      {src['how']} of {src.get('source')} at step {src.get('step')}")
    last = info["last_loss"]
    loss = (f"; last logged loss {last['loss']:.4f} at step {last['step']}, {last['steps_per_sec']:.1f} steps/s"
            if last and last.get("loss") is not None else "")
    lines.append(f"progress     step {info['step']:,} of {target}{' (finished)' if done else ''}{loss}")
    kept = ", ".join(f"{s:,}" for s in info["checkpoints"]) or "none yet"
    lines.append(f"checkpoints  {kept}")
    lo, hi = info["guidance_interval"]
    guided = (f"; guidance applies on t in [{lo:g}, {hi:g}] unless --guidance-interval says otherwise"
              if cond != "none" else "")
    lines.append(f"sampling     default solver {info['default_solver']}{guided}")
    return "\n".join(lines)


def info_command(args: argparse.Namespace) -> int:
    from ..modalities import get_modality

    info = run_info(args.run)
    if args.json:
        print(json.dumps(info))
        return 0
    print(format_info(info))
    result = info.get("eval")
    if result:
        try:
            table = get_modality(info["modality"]).format_eval(result)
        except (KeyError, TypeError, ValueError):  # an eval.json from an older version
            table = None
        print(f"\nlast evaluation (eval.json, step {result.get('step')}):\n{table}" if table else
              f"\nlast evaluation: eval.json at step {result.get('step')} (its format is not this version's)")
    elif "eval" in info:
        print(f"\nlast evaluation: {Path(args.run) / 'eval.json'} is not valid JSON (rerun 'noise2data eval')")
    return 0


INFO_COMMANDS = {"info": info_command}
