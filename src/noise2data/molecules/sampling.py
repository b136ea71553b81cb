"""Sampling molecules from a trained run: draw sizes, start from zero-centre-of-mass noise, integrate.

Options beyond sizes from the training histogram:

- ``condition``: properties (see :mod:`.properties`) for a run trained on them, with classifier-free
  ``guidance`` against the null condition; atom counts are drawn from the training molecules of the
  requested heavy-atom composition when it has any;
- ``composition``: heavy atoms per element (and optionally H) as a *hard* constraint: the type
  coordinates of the atoms follow the conditional path to exactly those one-hot types (alpha_t x1 +
  sigma_t x0, with their exact velocity), so only positions are generated and the formula is met by
  construction; hydrogens are drawn from the training molecules of that formula unless given;
- ``atoms``: every molecule with this many atoms.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..broadcast import append_dims
from ..errors import UserError
from ..fields import Field, model_field
from ..guidance import classifier_free_guidance
from ..paths import GaussianPath
from ..run import Run
from ..samplers import ODE_SOLVERS, make_grid
from .chemistry import ELEMENTS
from .properties import HEAVY
from .self_conditioning import recycling
from .space import SizeDistribution, decode, formula_key, sample_prior, size_mask


def is_molecule_run(run_or_config: Run | dict) -> bool:
    cfg = run_or_config.config if isinstance(run_or_config, Run) else run_or_config
    return cfg.get("model", {}).get("name") == "egnn"


def fixed_types(field: Field, types: Tensor, x0: Tensor, path: GaussianPath, mask: Tensor) -> Field:
    """``field`` with the type coordinates held on the conditional path to ``types: (B, N, T)`` (scaled
    one-hot) from the noise ``x0``: positions are generated, types are given."""
    noise = x0[..., 3:]

    def constrained(x: Tensor, t: Tensor) -> Tensor:
        c = path.schedule(t)
        a, s = append_dims(c.alpha, 3), append_dims(c.sigma, 3)
        da, ds = append_dims(c.d_alpha, 3), append_dims(c.d_sigma, 3)
        v = field(torch.cat([x[..., :3], a * types + s * noise], -1), t)
        return torch.cat([v[..., :3], (da * types + ds * noise) * mask[..., None]], -1)

    return constrained


def composition_types(composition: dict[str, int], max_atoms: int, type_scale: float) -> tuple[int, Tensor]:
    """Atoms and one-hot types ``(max_atoms, T)`` x ``type_scale`` of a formula with its hydrogens."""
    order = [ELEMENTS.index(e) for e in ELEMENTS for _ in range(composition.get(e, 0))]
    if len(order) > max_atoms:
        raise UserError(f"the composition has {len(order)} atoms; this model has {max_atoms} atom slots")
    types = torch.zeros(max_atoms, len(ELEMENTS))
    types[torch.arange(len(order)), torch.tensor(order)] = type_scale
    return len(order), types


def _formula_sizes(run: Run, counts: dict[str, int]) -> SizeDistribution | None:
    """Atom counts of the training molecules with these heavy atoms, or None when there are none."""
    table = run.config["molecules"].get("sizes_by_composition", {}).get(formula_key(counts))
    return SizeDistribution({int(k): v for k, v in table.items()}) if table else None


def _hydrogens(run: Run, composition: dict[str, int], n: int, gen: torch.Generator) -> Tensor:
    """``(n,)`` hydrogen counts for a heavy-atom formula, drawn from the training molecules of that formula."""
    sizes = _formula_sizes(run, composition)
    if sizes is None:
        key = formula_key(composition)
        raise UserError(f"no training molecule has the heavy atoms {key}: give the hydrogens too (e.g. {key}H10)")
    return sizes.sample(n, gen) - sum(v for e, v in composition.items() if e != "H")


def _sizes(run: Run, n: int, gen: torch.Generator, sizes: Tensor | None, atoms: int | None,
           condition: Tensor | None) -> Tensor:
    if sizes is not None:
        return torch.as_tensor(sizes).reshape(-1)
    if atoms is not None:
        if not 2 <= atoms <= int(run.config["model"]["max_atoms"]):
            raise UserError(f"--atoms must be between 2 and the model's {run.config['model']['max_atoms']} slots, "
                            f"got {atoms}")
        return torch.full((n,), atoms)
    out = SizeDistribution.from_dict(run.config["molecules"]["sizes"]).sample(n, gen)
    for i, row in enumerate(condition if condition is not None else []):  # sizes of the requested formula
        if not torch.isfinite(row[:4]).all():  # a null (NaN) request: sizes from the histogram
            continue
        sizes = _formula_sizes(run, {e: max(int(round(float(v))), 0) for e, v in zip(HEAVY, row[:4], strict=True)})
        if sizes is not None:
            out[i] = sizes.sample(1, gen)[0]
    return out


def _condition_rows(run: Run, condition: Tensor | None, n: int) -> Tensor | None:
    """``(n, k)`` requested properties in their own units, or None."""
    props = run.config["molecules"].get("properties")
    if condition is None:
        return None
    if props is None:
        raise UserError(f"{run.run_dir} was not trained on properties (--cond-file): it cannot take --condition")
    condition = torch.as_tensor(condition, dtype=torch.float64)
    condition = condition.expand(n, -1) if condition.ndim == 1 else condition
    k = len(props["names"])
    if condition.shape != (n, k):
        raise UserError(f"the run conditions on {k} properties ({', '.join(props['names'])}); got a condition of "
                        f"shape {tuple(condition.shape)}")
    return condition


@torch.inference_mode()
def sample_molecules(run: Run, n: int, *, sizes: Tensor | None = None, solver: str = "heun", steps: int = 50,
                     seed: int = 0, batch_size: int = 100, condition: Tensor | None = None, guidance: float = 1.0,
                     composition: dict[str, int] | list[dict[str, int]] | None = None, atoms: int | None = None,
                     interval: tuple[float, float] = (0.0, 1.0)) -> list[tuple[Tensor, Tensor]]:
    """``n`` molecules ``(positions (n_i, 3), types (n_i,))`` (see the module docstring for the options).

    ``condition``: ``(k,)`` or ``(n, k)`` properties in their own units (NaN: unconditional), guided by
    ``guidance`` for t in ``interval``;
    ``composition``: e.g. ``{"C": 6, "N": 1, "O": 1}`` (``"H"`` optional), or one such per molecule."""
    if not is_molecule_run(run):
        raise UserError(f"{run.run_dir} is not a molecule run (model '{run.config['model'].get('name')}')")
    if solver not in ODE_SOLVERS:
        raise UserError(f"unknown solver '{solver}': expected one of {', '.join(ODE_SOLVERS)}")
    if guidance != 1.0 and condition is None:
        raise UserError("guidance needs a condition to guide towards: give --condition")
    gen = torch.Generator().manual_seed(seed)
    max_atoms, type_scale = int(run.config["model"]["max_atoms"]), float(run.config["molecules"]["type_scale"])
    cond_rows = _condition_rows(run, condition, n)
    known = None
    if composition is not None:
        per_row = [composition] * n if isinstance(composition, dict) else list(composition)
        if len(per_row) != n:
            raise UserError(f"give one composition, or one per molecule ({n}); got {len(per_row)}")
        known = []
        for comp in per_row:
            h = comp["H"] if "H" in comp else int(_hydrogens(run, comp, 1, gen)[0])
            known.append(composition_types({**comp, "H": int(h)}, max_atoms, type_scale))
        sizes = torch.tensor([k[0] for k in known])
    sizes = _sizes(run, n, gen, sizes, atoms, cond_rows)
    if len(sizes) != n or int(sizes.min()) < 2:
        raise UserError(f"give {n} atom counts of at least 2, got {sizes.tolist()[:5]}...")
    # batches of similar sizes (the network computes only the slots a batch uses), returned in the draw's order
    order = torch.argsort(sizes, stable=True)
    mask = size_mask(sizes[order], max_atoms)
    lo, hi = run.path.sampling_interval(run.prediction)
    ts = make_grid("uniform", run.path, steps, lo, hi)
    out: list = [None] * n
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        m = mask[start:start + batch_size].to(run.device)
        x0 = sample_prior(m.cpu(), generator=gen).to(run.device)
        field = _field(run, m, None if cond_rows is None else cond_rows[rows], guidance, interval)
        if known is not None:
            types = torch.stack([known[int(i)][1] for i in rows]).to(run.device)
            field = fixed_types(field, types, x0, run.path, m)
        x = ODE_SOLVERS[solver](field, x0, ts, path=run.path).x
        if known is not None:
            x = torch.cat([x[..., :3], types], -1)  # exactly the given types (the path ends within sigma_hi)
        x = x.cpu()
        if not torch.isfinite(x).all():
            raise UserError(f"sampling produced NaN/Inf ({solver}, {steps} steps): try more steps")
        for i, mol in zip(rows.tolist(), decode(x, m.cpu()), strict=True):
            out[i] = mol
    return out


def _field(run: Run, mask: Tensor, cond: Tensor | None, guidance: float,
           interval: tuple[float, float] = (0.0, 1.0)) -> Field:
    """The velocity for molecules of ``mask: (B, N)``, conditioned on properties ``cond: (B, k)`` if given. A
    self-conditioned network is fed its last estimate, separately in the conditional and the null field."""
    props = run.config["molecules"].get("properties")
    if props is None:
        return model_field(recycling(run.model), run.path, run.prediction, cond=mask)
    y = torch.full((mask.shape[0], len(props["names"])), float("nan"), dtype=torch.float64) if cond is None else \
        (cond - torch.tensor(props["mean"], dtype=torch.float64)) / torch.tensor(props["std"], dtype=torch.float64)
    full = torch.cat([mask.float(), y.float().to(mask.device)], 1)
    field = model_field(recycling(run.model), run.path, run.prediction, cond=full)
    if guidance == 1.0 or cond is None:
        return field
    null = torch.cat([mask.float(), torch.full_like(full[:, mask.shape[1]:], float("nan"))], 1)
    null_field = model_field(recycling(run.model), run.path, run.prediction, cond=null)
    return classifier_free_guidance(field, null_field, guidance, interval)
