"""Checkpoints written atomically, verified on load, never unpickled.

A run folder holds ``config.json`` and ``checkpoints/step_XXXXXXXX/`` folders, each with
``<group>.safetensors`` files (model, ema, optimizer, rng, stats) and ``meta.json`` (the step, the
optimizer's non-tensor state, and a SHA-256 of every file). A checkpoint is written into a
temporary folder, every file fsync'ed, then renamed into place, so a crash leaves either the old
set of checkpoints or the new one, never a half-written checkpoint under a valid name. On load the
checksums are verified; :func:`latest_checkpoint` skips (and reports) a damaged newest checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError

CKPT_DIR = "checkpoints"
PREFIX = "step_"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write JSON to ``path`` through a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def flatten_optimizer(state: dict) -> tuple[dict[str, Tensor], dict]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON-able rest."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in state["state"].items():
        for name, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"{idx}.{name}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, Tensor], rest: dict) -> dict:
    """Invert :func:`flatten_optimizer`."""
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    for idx, st in rest.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(st)
    return {"state": state, "param_groups": rest["param_groups"]}


def save_checkpoint(
    run_dir: str | Path, step: int, groups: dict[str, dict[str, Tensor]], meta: dict, keep: int = 3
) -> Path:
    """Write ``groups`` (name -> tensors) and ``meta`` as checkpoint ``step``; keep the newest ``keep``."""
    import safetensors.torch as st
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp_{step:08d}_"))
    try:
        sums = {}
        for name, tensors in groups.items():
            f = tmp / f"{name}.safetensors"
            st.save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(f))
            with f.open("rb+") as fh:
                os.fsync(fh.fileno())
            sums[f.name] = _sha256(f)
        write_json_atomic(tmp / "meta.json", {**meta, "step": step, "sha256": sums})
        _fsync_dir(tmp)
        if final.exists():  # the same step written again (e.g. a final save): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoint folders of a run, oldest first (temporary folders excluded)."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def checkpoint_step(ckpt: Path) -> int:
    """The training step a checkpoint folder holds, from its name (``step_00000090`` -> 90)."""
    return int(ckpt.name[len(PREFIX):])


def verify_checkpoint(ckpt: Path) -> str | None:
    """None if the checkpoint is complete and intact, else what is wrong with it."""
    meta_path = ckpt / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"unreadable meta.json ({exc.__class__.__name__})"
    for name, digest in meta.get("sha256", {}).items():
        f = ckpt / name
        if not f.is_file():
            return f"missing {name}"
        if _sha256(f) != digest:
            return f"checksum mismatch in {name} (truncated or corrupted)"
    return None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest intact checkpoint; damaged newer ones are reported on stderr and skipped."""
    for ckpt in reversed(list_checkpoints(run_dir)):
        problem = verify_checkpoint(ckpt)
        if problem is None:
            return ckpt
        print(f"noise2data: warning: skipping damaged checkpoint {ckpt}: {problem}", file=sys.stderr)
    return None


def load_checkpoint(ckpt: str | Path, groups: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Load a verified checkpoint: ``({group: {name: tensor}}, meta)``."""
    import safetensors.torch as st
    ckpt = Path(ckpt)
    problem = verify_checkpoint(ckpt)
    if problem:
        raise UserError(f"checkpoint {ckpt} is damaged: {problem}")
    meta = json.loads((ckpt / "meta.json").read_text())
    names = groups or tuple(Path(n).stem for n in meta["sha256"])
    out = {}
    for name in names:
        f = ckpt / f"{name}.safetensors"
        if not f.is_file():
            raise UserError(f"checkpoint {ckpt} has no '{name}' weights")
        out[name] = st.load_file(str(f))
    return out, meta


def rng_state(generator: torch.Generator) -> dict[str, Tensor]:
    """Every random state training uses, as tensors."""
    state = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if generator.device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(generator.device)
    return state


def set_rng_state(generator: torch.Generator, state: dict[str, Tensor]) -> None:
    """Restore what :func:`rng_state` saved."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and generator.device.type == "cuda":
        torch.cuda.set_rng_state(state["torch_cuda"], generator.device)
