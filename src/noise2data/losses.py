"""Training objectives: conditional flow matching and denoising score matching.

Each loss returns one value per sample, ``(B,)``; the caller reduces (and may weight). The model
output ``pred`` is regressed onto the *conditional* target of its prediction kind; because the
conditional target is an unbiased estimate of the marginal one, the minimiser over functions of
``(x_t, t)`` is the marginal quantity (the marginal velocity for flow matching, the marginal
score, noise or data prediction for score matching).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .broadcast import append_dims
from .errors import UserError
from .paths import GaussianPath, PathSample, check_prediction


def per_sample_mse(err: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean of squares over every dimension but the batch: ``(B, *D) -> (B,)``.

    With ``weight`` (broadcastable to ``err``, e.g. 0 on entries the loss must not count), the
    weighted mean ``sum(w err^2) / sum(w)`` per sample (0 for a sample whose weights are all 0).
    """
    if weight is None:
        return err.pow(2).flatten(1).mean(1)
    w = weight.expand_as(err).to(err.dtype)
    return (w * err.pow(2)).flatten(1).sum(1) / w.flatten(1).sum(1).clamp(min=1e-12)


def flow_matching_loss(pred: Tensor, sample: PathSample, path: GaussianPath, weight: Tensor | None = None) -> Tensor:
    """Conditional flow matching: ``|| v_theta(x_t, t) - u_t(x_t | x1) ||^2`` per sample.

    Args:
        pred: ``(B, *D)`` the model's velocity at ``(sample.x_t, sample.t)``.
        sample: the path sample the model was evaluated on.
        path: the probability path.
        weight: optional ``(B, *D)`` (or broadcastable) weights of the entries, e.g. a mask.

    Returns:
        ``(B,)`` the squared error averaged over data dimensions.
    """
    return per_sample_mse(pred - path.target(sample, "velocity"), weight)


def denoising_score_matching_loss(
    pred: Tensor, sample: PathSample, path: GaussianPath, prediction: str = "noise", weight: Tensor | None = None
) -> Tensor:
    """Denoising score matching, in the parameterisation the model predicts.

    * ``"score"``: ``sigma_t^2 || s_theta - grad log p_t(x_t|x1) ||^2 = || sigma_t s_theta + x0 ||^2``
      (the usual lambda(t) = sigma_t^2 weighting, written without dividing by sigma_t);
    * ``"noise"``: ``|| eps_theta - x0 ||^2`` (the same objective with eps = -sigma_t * score);
    * ``"data"``: ``|| x1_theta - x1 ||^2``.

    Args:
        pred: ``(B, *D)`` the model output of kind ``prediction``.
        sample: the path sample the model was evaluated on.
        path: the probability path.
        prediction: ``"score"``, ``"noise"`` or ``"data"``.
        weight: optional weights of the entries, as for :func:`flow_matching_loss`.

    Returns:
        ``(B,)`` per-sample losses.
    """
    check_prediction(prediction)
    if prediction == "velocity":
        raise UserError("a velocity prediction is trained with flow_matching_loss, not DSM")
    if prediction == "score":
        sigma = append_dims(sample.coeffs.sigma, pred.ndim)
        return per_sample_mse(sigma * pred + sample.x0, weight)
    return per_sample_mse(pred - path.target(sample, prediction), weight)


def prediction_loss(
    pred: Tensor, sample: PathSample, path: GaussianPath, prediction: str, weight: Tensor | None = None
) -> Tensor:
    """The loss for a model whose output is of kind ``prediction`` (dispatches to the two above)."""
    if prediction == "velocity":
        return flow_matching_loss(pred, sample, path, weight)
    return denoising_score_matching_loss(pred, sample, path, prediction, weight)


@dataclass(frozen=True)
class TimeDistribution:
    """The distribution of training times t in [0, 1].

    Attributes:
        name: ``"uniform"``, ``"logit_normal"`` (t = sigmoid(m + s n), n ~ N(0, 1), as in SD3) or
            ``"beta"`` (density proportional to t^(a-1) (1-t)^(b-1); Beta(2, 1) favours the data end t = 1).
        mean, std: the logit-normal's m and s.
        a, b: the Beta distribution's parameters (both >= 1, so the density is bounded).
    """

    name: str = "uniform"
    mean: float = 0.0
    std: float = 1.0
    a: float = 1.0
    b: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in TIME_DISTRIBUTIONS:
            raise UserError(
                f"unknown time distribution '{self.name}': expected one of "
                f"{', '.join(TIME_DISTRIBUTIONS)}"
            )
        if not self.std > 0:
            raise UserError(f"time distribution std must be > 0, got {self.std}")
        if not (self.a >= 1 and self.b >= 1):
            raise UserError(f"Beta time distribution needs a, b >= 1 (a bounded density), got a={self.a}, b={self.b}")

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Draw ``n`` times, ``(n,)``."""
        return TIME_DISTRIBUTIONS[self.name](self, n, generator, device, dtype)


def _uniform(d: TimeDistribution, n: int, g, device, dtype) -> Tensor:
    return torch.rand(n, generator=g, device=device, dtype=dtype)


def _logit_normal(d: TimeDistribution, n: int, g, device, dtype) -> Tensor:
    z = torch.randn(n, generator=g, device=device, dtype=dtype)
    return torch.sigmoid(d.mean + d.std * z)


def _beta(d: TimeDistribution, n: int, g, device, dtype) -> Tensor:
    # inverse CDF on a fine grid (the CDF by the trapezoid rule on the bounded density), so the draw
    # comes from the training generator like every other random number
    grid = torch.linspace(0, 1, 4097, dtype=torch.float64)
    pdf = grid.pow(d.a - 1) * (1 - grid).pow(d.b - 1)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum((pdf[1:] + pdf[:-1]) / 2, 0)])
    cdf = cdf / cdf[-1]
    u = torch.rand(n, generator=g, device=device, dtype=torch.float64).cpu()
    hi = torch.searchsorted(cdf, u).clamp(1, len(grid) - 1)
    frac = (u - cdf[hi - 1]) / (cdf[hi] - cdf[hi - 1]).clamp(min=1e-300)
    return (grid[hi - 1] + frac * (grid[hi] - grid[hi - 1])).to(device=device, dtype=dtype)


TIME_DISTRIBUTIONS: dict[str, Callable] = {"uniform": _uniform, "logit_normal": _logit_normal, "beta": _beta}
