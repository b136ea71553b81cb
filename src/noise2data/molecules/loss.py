"""The molecule loss: a per-molecule mean over its real atoms, and cross-entropy on predicted types.

Padding must not count, and a molecule of 5 atoms must weigh as much as one of 29: the loss of a
molecule is the mean over its real atoms (``weight`` is the atom mask), never over the padded slots.
With a data prediction (``--objective data``) the network returns the clean molecule, positions and
type probabilities times the one-hot scale (see :mod:`.egnn`): positions are regressed by MSE, types by
cross-entropy, ``TYPE_WEIGHT`` times it. Other predictions are regressed by MSE over every feature of
the real atoms.

``position_weight`` weights each molecule's position error by its time: ``uniform`` (1), ``min-snr:G``
(min(SNR_t, G), the Min-SNR rule of Hang et al. 2023 for a data prediction: errors at high noise, which
the network cannot remove, stop drowning those of the last Angstrom-scale refinements) or ``snr+1:G``
(min(SNR_t + 1, G): the same, keeping weight 1 at high noise). SNR_t = alpha_t^2 / sigma_t^2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserError
from ..losses import prediction_loss
from ..paths import GaussianPath, PathSample

TYPE_WEIGHT = 0.2  # cross-entropy (nats) beside the squared error of positions (Angstrom^2 per coordinate)


def parse_position_weight(spec: str) -> tuple[str, float]:
    """``uniform``, ``min-snr:G`` or ``snr+1:G`` (G > 0) -> ``(kind, G)``; a one-line error otherwise."""
    kind, _, cap = spec.partition(":")  # (the CLI's "auto" is resolved by the molecule modality first)
    if kind == "uniform" and not cap:
        return kind, 0.0
    try:
        g = float(cap)
    except ValueError:
        g = float("nan")
    if kind not in ("min-snr", "snr+1") or not g > 0 or g == float("inf"):
        raise UserError(f"--position-weight takes uniform, min-snr:G or snr+1:G with G > 0 (e.g. min-snr:5); "
                        f"got '{spec}'")
    return kind, g


def time_weight(position_weight: tuple[str, float], alpha: Tensor, sigma: Tensor) -> Tensor:
    """``(B,)`` weights of the position errors at schedule values ``alpha, sigma: (B,)`` (see the module);
    ``position_weight`` is a parsed spec (:func:`parse_position_weight`)."""
    kind, cap = position_weight
    if kind == "uniform":
        return torch.ones_like(alpha)
    snr = alpha.pow(2) / sigma.pow(2).clamp(min=1e-12)
    return (snr if kind == "min-snr" else snr + 1).clamp(max=cap)


def atom_weight(mask: Tensor) -> Tensor:
    """The loss weights of ``(B, N, 3 + T)`` entries from the atom mask ``(B, N)``: 1 on real atoms."""
    return mask.to(torch.float32)[..., None]


def molecule_loss(pred: Tensor, sample: PathSample, path: GaussianPath, prediction: str,
                  weight: Tensor | None = None, type_scale: float = 0.25,
                  position_weight: tuple[str, float] = ("uniform", 0.0)) -> Tensor:
    """Per-molecule loss ``(B,)`` of ``pred: (B, N, 3 + T)``; ``weight: (B, N, 1)`` the atom mask;
    ``position_weight`` parsed once by :func:`parse_position_weight`, not at every step."""
    if prediction != "data":
        return prediction_loss(pred, sample, path, prediction, weight)
    atoms = weight[..., 0] if weight is not None else torch.ones(pred.shape[:2], device=pred.device)  # (B, N)
    count = atoms.sum(1).clamp(min=1)  # (B,)
    x1 = sample.x1
    w = time_weight(position_weight, sample.coeffs.alpha.reshape(-1), sample.coeffs.sigma.reshape(-1))  # (B,)
    pos = (pred[..., :3] - x1[..., :3]).pow(2).mean(-1) * w[:, None]  # (B, N)
    prob = (pred[..., 3:] / type_scale).clamp(min=1e-8)  # (B, N, T): clamped before the log, no 0 * inf
    target = (x1[..., 3:] / type_scale).clamp(min=0)  # (B, N, T) one-hot
    ce = -(target * prob.log()).sum(-1)  # (B, N)
    return ((pos + TYPE_WEIGHT * ce) * atoms).sum(1) / count
