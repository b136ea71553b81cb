"""Training curves: one JSON line per log event in ``RUN/metrics.jsonl``, TensorBoard optionally.

Lines are ``{"step", "loss", "steps_per_sec"}`` for the loss and ``{"step", "eval": {...}}`` for
periodic evaluations, so the file can be read with one ``json.loads`` per line (or pandas'
``read_json(lines=True)``). On resume the lines after the checkpoint's step are dropped first,
so the curve of a resumed run has no duplicate or orphaned points.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import require

LOG_FILE = "metrics.jsonl"


def trim_log(path: Path, upto: int) -> None:
    """Drop lines with ``step > upto`` (they belong to steps a resume will redo)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= upto]
    path.write_text("".join(ln + "\n" for ln in keep))


def read_log(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """``(loss entries, eval entries)`` of a run's metrics.jsonl (empty lists when there is none)."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return [], []
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return [r for r in rows if "loss" in r], [r for r in rows if "eval" in r]


class MetricsLogger:
    """Appends to ``metrics.jsonl`` (when there is a run folder) and mirrors to TensorBoard if asked."""

    def __init__(self, run_dir: Path | None, *, tensorboard: bool = False) -> None:
        self.file = (run_dir / LOG_FILE).open("a") if run_dir is not None else None
        self.tb = None
        if tensorboard and run_dir is not None:
            require("tensorboard", "tensorboard", "logging to TensorBoard")
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def _write(self, row: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def loss(self, step: int, loss: float, steps_per_sec: float, skipped: int = 0) -> None:
        row = {"step": step, "loss": loss, "steps_per_sec": steps_per_sec}
        self._write(row | {"skipped": skipped} if skipped else row)
        if self.tb is not None:
            self.tb.add_scalar("train/loss", loss, step)
            self.tb.add_scalar("train/steps_per_sec", steps_per_sec, step)

    def evaluation(self, step: int, scores: dict[str, float]) -> None:
        self._write({"step": step, "eval": scores})
        if self.tb is not None:
            for k, v in scores.items():
                self.tb.add_scalar(f"eval/{k}", v, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()
