"""Exact log-likelihood of molecules: the probability-flow ODE on the zero-centre-of-mass subspace.

A molecule of n atoms lives in ``d = 3 (n - 1) + n T`` dimensions: its positions have zero centre of
mass (one 3-vector fewer than its atoms), its T type coordinates are free, and its padded slots do not
exist. The noise is the standard Gaussian on that subspace, so

    log p_1(x) = log N_d(z; 0, s^2 I) + int -div v dt,    log N_d(z) = -|z|^2 / (2 s^2) - d (log s + log(2 pi) / 2),

with the divergence taken *within* the subspace: the field is sandwiched between projections,
``P v(P x)``, whose trace in the ambient coordinates is the subspace's divergence (the trace of P J P).
Counting all ``N_max (3 + T)`` coordinates instead would add a constant per size that is not a
density of anything. The density is over positions in Angstrom and the continuous type coordinates
in the model's scale (one-hot x ``type_scale``): a density of the continuous encoding, not a
probability of the discrete molecule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import UserError
from ..fields import Field, model_field
from ..likelihood import LikelihoodOutput, log_likelihood
from ..paths import GaussianPath
from .space import remove_com


def subspace_dimension(mask: Tensor, num_types: int) -> Tensor:
    """``(B,)`` dimensions of each molecule's space: 3 (n - 1) + n T for ``mask: (B, N)``."""
    n = mask.sum(1)
    return 3 * (n - 1) + n * num_types


def subspace_gaussian_log_prob(mask: Tensor, num_types: int, std: float = 1.0) -> Callable[[Tensor], Tensor]:
    """log N(z; 0, std^2 I) on each molecule's subspace, ``(B, N, 3 + T) -> (B,)``."""
    d = subspace_dimension(mask, num_types).to(torch.float64)

    def log_prob(z: Tensor) -> Tensor:
        sq = (remove_com(z, mask).double() ** 2).sum((1, 2))
        return (-0.5 * sq / std**2 - d.to(z.device) * (math.log(std) + 0.5 * math.log(2 * math.pi))).to(z.dtype)

    return log_prob


def subspace_field(field: Field, mask: Tensor) -> Field:
    """``P v(P x, t)``: the field seen from the zero-centre-of-mass subspace of the molecules ``mask: (B, N)``."""

    def projected(x: Tensor, t: Tensor) -> Tensor:
        return remove_com(field(remove_com(x, mask), t), mask)

    return projected


def subspace_log_likelihood(field_of_mask: Callable[[Tensor], Field], x: Tensor, mask: Tensor, path: GaussianPath,
                            **kwargs) -> LikelihoodOutput:
    """log p of molecules ``x: (B, N, 3 + T)`` (``mask: (B, N)``) under the velocity ``field_of_mask(mask)``;
    ``kwargs`` as for :func:`noise2data.likelihood.log_likelihood` (solver, steps, t_lo, t_hi, divergence...)."""
    if x.ndim != 3 or mask.shape != x.shape[:2] or mask.dtype != torch.bool:
        raise UserError(f"molecules are (B, N, 3 + T) with a bool atom mask (B, N); got {tuple(x.shape)} and "
                        f"{mask.dtype} {tuple(mask.shape)}")
    if int(mask.sum(1).min()) < 2:
        raise UserError("every molecule needs at least 2 atoms for a density on the zero-centre-of-mass subspace")
    com = (x[..., :3] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    if com.abs().max() > 1e-3:
        off = float(com.abs().max())
        raise UserError(f"molecules must be centred (centre of mass 0 over real atoms); off by {off:.3g} Angstrom: "
                        "encode them with noise2data.molecules.space.encode")
    prior = subspace_gaussian_log_prob(mask, x.shape[-1] - 3, path.prior_std())
    return log_likelihood(subspace_field(field_of_mask(mask), mask), remove_com(x, mask), path,
                          prior_log_prob=prior, **kwargs)


def molecule_log_likelihood(run, molecules, *, solver: str = "rk4", steps: int = 64,  # noqa: ANN001
                            divergence: str = "hutchinson", seed: int = 0, batch_size: int = 100) -> LikelihoodOutput:
    """log p of a :class:`~noise2data.molecules.data.MoleculeSet` under a molecule run, per molecule ``(M,)``.

    ``divergence="exact"`` costs one backward pass per coordinate (N_max (3 + T) of them); Hutchinson's
    estimate (a probe held along each path) is unbiased at one pass per step.
    """
    from .space import encode

    type_scale = float(run.config["molecules"]["type_scale"])
    if molecules.max_atoms > int(run.config["model"]["max_atoms"]):
        raise UserError(f"molecules of up to {molecules.max_atoms} atom slots do not fit this run's "
                        f"{run.config['model']['max_atoms']}")
    x = encode(molecules, type_scale)
    pad = int(run.config["model"]["max_atoms"]) - x.shape[1]
    mask = torch.nn.functional.pad(molecules.mask, (0, pad))
    x = torch.nn.functional.pad(x, (0, 0, 0, pad))
    lo, hi = run.path.sampling_interval(run.prediction)
    gen = torch.Generator(run.device).manual_seed(seed)
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, mb = x[start:start + batch_size].to(run.device), mask[start:start + batch_size].to(run.device)
            outs.append(subspace_log_likelihood(
                # a self-conditioned network is read without an estimate: a field of (x, t) alone
                lambda m: model_field(run.model, run.path, run.prediction, cond=m), xb, mb, run.path, solver=solver,
                steps=steps, t_lo=lo, t_hi=hi, divergence=divergence, generator=gen))
    return LikelihoodOutput.concat(outs)
