"""How close a property-conditioned run's samples land to the properties they were asked for.

Requests are the property vectors of training molecules (perceived on their conformers, the way
samples are scored, and only those RDKit sanitises, so every request is a full row). Each request is
sampled once per mode: without the condition (the null row: how far an unconditioned sample lands, the
error's baseline), with it at guidance 1 and at a chosen guidance, and with the heavy-atom composition
fixed as a hard constraint besides. The errors are :func:`.properties.property_errors` (mean absolute
error per property over valid samples, and the share of exact compositions), plus the share of valid
samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserError
from ..guidance import interval_words
from .data import MoleculeSet
from .properties import HEAVY, conformer_properties, property_errors
from .sampling import sample_molecules

COLUMNS = ("exact_composition", "valid", "mae_C", "mae_N", "mae_O", "mae_F", "mae_rings", "mae_tpsa")


def property_requests(data: MoleculeSet, n: int, seed: int = 3) -> Tensor:
    """``(n, k)`` property vectors of ``n`` random molecules of ``data`` whose conformers RDKit sanitises."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    rows = []
    for i in order:
        row = conformer_properties(*data.molecule(i))
        if all(v == v for v in row):  # no NaN: rings and TPSA were perceived
            rows.append(row)
            if len(rows) == n:
                break
    if not rows:
        raise UserError("no training molecule's conformer could be read by RDKit: no property requests to make")
    return torch.tensor(rows, dtype=torch.float64)


def property_error_table(run, requests: Tensor, *, guidance: float = 2.0, solver: str = "midpoint",  # noqa: ANN001
                         steps: int = 50, seed: int = 2, interval: tuple[float, float] = (0.0, 1.0)
                         ) -> dict[str, dict]:
    """Property errors of the samples of a property-conditioned ``run`` asked for ``requests: (n, k)``,
    per mode (see the module docstring); the guided mode is guided for t in ``interval``."""
    if run.config["molecules"].get("properties") is None:
        raise UserError(f"{run.run_dir} is not conditioned on properties (train it with --cond-file)")
    comps = [{e: int(v) for e, v in zip(HEAVY, row[: len(HEAVY)].tolist(), strict=True)} for row in requests]
    modes = {"unconditional (null)": {}, "condition, guidance 1": {"condition": requests}}
    if guidance != 1.0:
        modes[f"condition, guidance {guidance:g}{interval_words(interval)}"] = {
            "condition": requests, "guidance": guidance, "interval": interval}
    modes["composition fixed + condition"] = {"condition": requests, "composition": comps}
    out = {}
    for name, kw in modes.items():
        mols = sample_molecules(run, len(requests), solver=solver, steps=steps, seed=seed, **kw)
        got = torch.tensor([conformer_properties(p, t) for p, t in mols], dtype=torch.float64)
        out[name] = property_errors(requests, got) | {"valid": float(torch.isfinite(got[:, 4]).double().mean())}
    return out


def format_property_errors(table: dict[str, dict]) -> str:
    """The table as text: one row per mode, shares in percent, errors in the properties' units."""
    lines = [f"{'':<32}" + "".join(f"{c.replace('mae_', 'MAE '):>13}" for c in COLUMNS)]
    for name, r in table.items():
        vals = "".join(f"{100 * r[c]:12.1f}%" if c in ("exact_composition", "valid") else
                       f"{r[c]:13.2f}" if r.get(c) is not None else f"{'-':>13}" for c in COLUMNS)
        lines.append(f"{name:<32}{vals}")
    return "\n".join(lines)


__all__ = ["COLUMNS", "format_property_errors", "property_error_table", "property_requests"]
