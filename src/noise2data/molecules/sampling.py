"""Sampling molecules from a trained run: draw sizes, start from zero-centre-of-mass noise, integrate."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserError
from ..fields import model_field
from ..run import Run
from ..samplers import ODE_SOLVERS, make_grid
from .space import SizeDistribution, decode, sample_prior, size_mask


def is_molecule_run(run_or_config: Run | dict) -> bool:
    cfg = run_or_config.config if isinstance(run_or_config, Run) else run_or_config
    return cfg.get("model", {}).get("name") == "egnn"


@torch.inference_mode()
def sample_molecules(run: Run, n: int, *, sizes: Tensor | None = None, solver: str = "heun", steps: int = 50,
                     seed: int = 0, batch_size: int = 100) -> list[tuple[Tensor, Tensor]]:
    """``n`` molecules ``(positions (n_i, 3), types (n_i,))``; atom counts from the training histogram
    unless ``sizes: (n,)`` is given."""
    if not is_molecule_run(run):
        raise UserError(f"{run.run_dir} is not a molecule run (model '{run.config['model'].get('name')}')")
    if solver not in ODE_SOLVERS:
        raise UserError(f"unknown solver '{solver}': expected one of {', '.join(ODE_SOLVERS)}")
    gen = torch.Generator().manual_seed(seed)
    max_atoms = int(run.config["model"]["max_atoms"])
    if sizes is None:
        sizes = SizeDistribution.from_dict(run.config["molecules"]["sizes"]).sample(n, gen)
    sizes = torch.as_tensor(sizes).reshape(-1)
    if len(sizes) != n or int(sizes.min()) < 2:
        raise UserError(f"give {n} atom counts of at least 2, got {sizes.tolist()[:5]}...")
    # batches of similar sizes (the network computes only the slots a batch uses), returned in the draw's order
    order = torch.argsort(sizes, stable=True)
    mask = size_mask(sizes[order], max_atoms)
    lo, hi = run.path.sampling_interval(run.prediction)
    ts = make_grid("uniform", run.path, steps, lo, hi)
    out: list = [None] * n
    for start in range(0, n, batch_size):
        m = mask[start:start + batch_size].to(run.device)
        x0 = sample_prior(m.cpu(), generator=gen).to(run.device)
        field = model_field(run.model, run.path, run.prediction, cond=m)
        x = ODE_SOLVERS[solver](field, x0, ts, path=run.path).x.cpu()
        if not torch.isfinite(x).all():
            raise UserError(f"sampling produced NaN/Inf ({solver}, {steps} steps): try more steps")
        for i, mol in zip(order[start:start + batch_size].tolist(), decode(x, m.cpu()), strict=True):
            out[i] = mol
    return out
