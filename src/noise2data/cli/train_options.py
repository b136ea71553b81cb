"""What a training run's options are, and where they come from.

In rising precedence: the generic defaults below (``TRAIN_DEFAULTS``), the defaults of the kind of data
(``Modality.defaults``), a ``--config`` file (TOML or JSON, or a run's own config.json), and the command
line. A file's options are turned into flags and parsed by the same parser as the command line's, so
they are checked the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError, nearest

TRAIN_DEFAULTS = {
    "steps": 5000, "minutes": None, "batch_size": 512, "lr": 2e-3, "path": "condot", "objective": "velocity",
    "time_dist": "uniform", "hidden": 256, "depth": 4, "time_embedding": "sinusoidal", "seed": 0,
    "device": "auto", "n_data": 100_000, "standardize": "feature", "ema_decay": 0.999, "grad_clip": 1.0,
    "checkpoint_every": 1000, "keep": 3, "key": None, "coupling": "auto",
    "lr_schedule": "cosine", "warmup_steps": 100, "eval_every": 0, "eval_metrics": "w2,mmd", "eval_n": 1000,
    "tensorboard": False, "dequantize": 0.0, "precision": "fp32", "compile": False, "skip_nonfinite": False,
    "labels": None, "label_key": None, "label_dropout": 0.1, "model": "mlp", "preset": "tiny", "cond": "none",
    "cond_file": None, "cond_key": None, "resize": None, "pad": 0, "hflip": False, "stream": False,
    "mf_ratio": 0.25, "mf_power": 1.0, "mf_jvp": "forward", "mf_guidance": 1.0, "size_bands": None,
    "rbf": None, "self_condition": None, "x_octaves": None, "position_weight": None, "bounce": None,
}
TIME_BUDGET_STEP_CAP = 10**9  # --steps of a run with --minutes and no --steps of its own
# Settings that define the model and its training problem: a resumed run must not change them.
FIXED_ON_RESUME = (
    "data", "key", "n_data", "standardize", "path", "objective", "hidden", "depth", "time_embedding",
    "time_dist", "coupling", "batch_size", "lr", "lr_schedule", "warmup_steps", "ema_decay", "grad_clip", "seed",
    "dequantize", "labels", "label_key", "label_dropout", "model", "preset", "cond", "cond_file", "cond_key",
    "resize", "pad", "hflip", "mf_ratio", "mf_power", "mf_jvp", "mf_guidance", "size_bands",
    "rbf", "self_condition", "x_octaves", "position_weight", "bounce",
)
# training flags that only some kinds of data take (they list them in Modality.own_train_options)
OWN_FLAGS = {"size_bands": "--size-bands", "rbf": "--rbf", "self_condition": "--self-condition",
             "position_weight": "--position-weight", "bounce": "--bounce"}
OPTION_NAMES = ("data", *TRAIN_DEFAULTS)


def read_config_file(path: str | Path) -> dict:
    """Training options from a TOML or JSON file whose keys are the flags' names (``batch-size`` or
    ``batch_size``); a run's config.json gives the options that run was trained with."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10: the same parser, a core dependency there
                import tomli as tomllib
            opts = tomllib.loads(text)
        else:
            opts = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path} is not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(opts, dict):
        raise UserError(f"{path}: expected a table of options, e.g. steps = 2000")
    if isinstance(opts.get("cli"), dict):  # a run's own config.json
        opts = opts["cli"]
    opts = {k.replace("-", "_"): v for k, v in opts.items()}
    unknown = sorted(set(opts) - set(OPTION_NAMES))
    if unknown:
        near = [m.replace("_", "-") for m in (nearest(k, OPTION_NAMES) for k in unknown) if m]
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise UserError(f"{path}: unknown training option(s) {', '.join(k.replace('_', '-') for k in unknown)}; "
                        f"{hint}the options are the flags of 'noise2data train --help' (e.g. batch-size = 128)")
    return opts


def config_argv(opts: dict) -> list[str]:
    """Options as command-line tokens, so the parser checks a file's values exactly as it checks flags."""
    argv = []
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            argv += [flag] if v else []
        elif v is not None:
            argv.append(f"{flag}={v}")
    return argv


def expand_config(argv: Sequence[str]) -> list[str]:
    """``train ... --config FILE ...`` -> the file's options placed before the command line's (which win)."""
    argv = list(argv)
    if not argv or argv[0] != "train":
        return argv
    for i, tok in enumerate(argv):
        if tok == "--config" or tok.startswith("--config="):
            if tok == "--config" and i + 1 >= len(argv):
                return argv  # argparse reports the missing value
            value = tok.partition("=")[2] if "=" in tok else argv[i + 1]
            rest = argv[:i] + argv[i + (1 if "=" in tok else 2):]
            return [rest[0], *config_argv(read_config_file(value)), *rest[1:]]
    return argv
