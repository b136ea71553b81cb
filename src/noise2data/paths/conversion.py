"""One conversion between the four ways a network can predict along a Gaussian path.

On the path ``x_t = alpha_t * x1 + sigma_t * x0`` a prediction of any one of

* ``"velocity"``: the marginal field u_t(x) = d_sigma * E[x0|x_t] + d_alpha * E[x1|x_t],
* ``"noise"``: E[x0 | x_t] (epsilon),
* ``"data"``: E[x1 | x_t] (the denoised x1),
* ``"score"``: grad log p_t(x) = -E[x0 | x_t] / sigma_t,

determines the other three, because together with the known ``x_t`` it fixes the pair
``(E[x0|x_t], E[x1|x_t])`` through the 2x2 linear system::

    [ x_t ]   [ sigma_t    alpha_t   ] [ x0 ]
    [  u  ] = [ d_sigma_t  d_alpha_t ] [ x1 ]

This holds for the *marginal* quantities of any Gaussian path, so a model trained with one
objective can be sampled as an ODE (velocity) or an SDE (velocity + score).

Singular points are intrinsic, not numerical accidents: a noise or score prediction cannot give
x1 where alpha_t = 0, and a data or score prediction cannot give x0 where sigma_t = 0. See
:meth:`noise2data.paths.gaussian.GaussianPath.sampling_interval`.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from ..broadcast import append_dims
from ..errors import UserError
from .schedules import ScheduleOutput

Prediction = Literal["velocity", "noise", "data", "score"]
PREDICTIONS: tuple[str, ...] = ("velocity", "noise", "data", "score")


def check_prediction(kind: str) -> str:
    """Return ``kind`` if it names a prediction, else raise a teaching error."""
    if kind not in PREDICTIONS:
        raise UserError(f"unknown prediction '{kind}': expected one of {', '.join(PREDICTIONS)}")
    return kind


def convert_prediction(
    pred: Tensor, x_t: Tensor, coeffs: ScheduleOutput, src: str, dst: str
) -> Tensor:
    """Convert a prediction of kind ``src`` into kind ``dst`` at the same ``(x_t, t)``.

    Args:
        pred: ``(B, *D)`` the prediction, of kind ``src``.
        x_t: ``(B, *D)`` the point on the path where it was made.
        coeffs: the schedule at the points' times, each field ``(B,)``.
        src, dst: one of ``"velocity"``, ``"noise"``, ``"data"``, ``"score"``.

    Returns:
        ``(B, *D)`` the prediction of kind ``dst``.
    """
    check_prediction(src)
    check_prediction(dst)
    if src == dst:
        return pred
    nd = x_t.ndim
    a, s = append_dims(coeffs.alpha, nd), append_dims(coeffs.sigma, nd)
    da, ds = append_dims(coeffs.d_alpha, nd), append_dims(coeffs.d_sigma, nd)

    # Step 1: the implied E[x0 | x_t] (noise) and a way to get E[x1 | x_t] (data) on demand.
    if src == "velocity":
        det = s * da - a * ds
        x0 = (da * x_t - a * pred) / det
        x1_of = lambda: (s * pred - ds * x_t) / det  # noqa: E731
    elif src == "data":
        x0 = (x_t - a * pred) / s
        x1_of = lambda: pred  # noqa: E731
    else:  # noise or score: both fix x0 first
        x0 = pred if src == "noise" else -s * pred
        x1_of = lambda: (x_t - s * x0) / a  # noqa: E731

    # Step 2: express the pair in the requested kind.
    if dst == "noise":
        return x0
    if dst == "score":
        return -x0 / s
    if dst == "data":
        return x1_of()
    return ds * x0 + da * x1_of()
