"""A Gaussian probability path built on a schedule: sampling x_t and the conditional targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..broadcast import append_dims
from ..prior import standard_normal
from .conversion import check_prediction, convert_prediction
from .schedules import Schedule, ScheduleOutput, schedule_spec


@dataclass(frozen=True)
class PathSample:
    """A draw from the conditional path: ``x_t = alpha_t * x1 + sigma_t * x0``.

    Attributes:
        t: ``(B,)`` times.
        x0: ``(B, *D)`` the noise.
        x1: ``(B, *D)`` the data point z that the path is conditioned on.
        x_t: ``(B, *D)`` the point on the path.
        coeffs: the schedule at ``t`` (kept so targets and losses do not recompute it).
    """

    t: Tensor
    x0: Tensor
    x1: Tensor
    x_t: Tensor
    coeffs: ScheduleOutput

    def rows(self, start: int, stop: int) -> PathSample:
        """The samples ``start:stop`` of the batch (one process's share in data-parallel training)."""
        c = self.coeffs
        return PathSample(self.t[start:stop], self.x0[start:stop], self.x1[start:stop], self.x_t[start:stop],
                          ScheduleOutput(c.alpha[start:stop], c.sigma[start:stop], c.d_alpha[start:stop],
                                         c.d_sigma[start:stop]))


class GaussianPath:
    """The Gaussian conditional path p_t(x | z) = N(alpha_t z, sigma_t^2 I) for a schedule.

    Args:
        schedule: any :class:`~noise2data.paths.schedules.Schedule`.
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def __repr__(self) -> str:
        return f"GaussianPath({self.schedule!r})"

    def spec(self) -> dict:
        """JSON-able description, inverted by :func:`noise2data.paths.make_path`."""
        return schedule_spec(self.schedule)

    def coeffs(self, t: Tensor) -> ScheduleOutput:
        """The schedule at ``t: (B,)``."""
        return self.schedule(t)

    def sample(
        self,
        x1: Tensor,
        t: Tensor,
        x0: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> PathSample:
        """Sample ``x_t ~ p_t(. | x1)``.

        Args:
            x1: ``(B, *D)`` data points.
            t: ``(B,)`` times in [0, 1].
            x0: ``(B, *D)`` noise; drawn from N(0, I) with ``generator`` when omitted.
        """
        if x0 is None:
            x0 = standard_normal(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        c = self.schedule(t)
        x_t = append_dims(c.alpha, x1.ndim) * x1 + append_dims(c.sigma, x1.ndim) * x0
        return PathSample(t=t, x0=x0, x1=x1, x_t=x_t, coeffs=c)

    def target(self, sample: PathSample, kind: str) -> Tensor:
        """The conditional regression target of a prediction kind for a path sample.

        ``velocity``: u_t(x_t | x1) = d_alpha x1 + d_sigma x0; ``noise``: x0; ``data``: x1;
        ``score``: grad log p_t(x_t | x1) = -x0 / sigma_t. Each ``(B, *D)``.
        """
        check_prediction(kind)
        if kind == "noise":
            return sample.x0
        if kind == "data":
            return sample.x1
        c = sample.coeffs
        nd = sample.x1.ndim
        if kind == "score":
            return -sample.x0 / append_dims(c.sigma, nd)
        return append_dims(c.d_alpha, nd) * sample.x1 + append_dims(c.d_sigma, nd) * sample.x0

    def conditional_velocity(self, x: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """u_t(x | x1) = d_alpha x1 + d_sigma (x - alpha x1) / sigma, ``(B, *D)``."""
        c = self.schedule(t)
        a, s = append_dims(c.alpha, x.ndim), append_dims(c.sigma, x.ndim)
        da, ds = append_dims(c.d_alpha, x.ndim), append_dims(c.d_sigma, x.ndim)
        return da * x1 + ds * (x - a * x1) / s

    def conditional_score(self, x: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """grad_x log p_t(x | x1) = -(x - alpha x1) / sigma^2, ``(B, *D)``."""
        c = self.schedule(t)
        a, s = append_dims(c.alpha, x.ndim), append_dims(c.sigma, x.ndim)
        return -(x - a * x1) / s**2

    def convert(self, pred: Tensor, x_t: Tensor, t: Tensor, src: str, dst: str) -> Tensor:
        """Convert a prediction between kinds; see :func:`~.conversion.convert_prediction`."""
        return convert_prediction(pred, x_t, self.schedule(t), src, dst)

    def prior_std(self) -> float:
        """sigma_0: the scale of the noise that sampling starts from (1 but for VE paths)."""
        return float(self.schedule(torch.zeros(1, dtype=torch.float64)).sigma)

    def sample_prior(
        self,
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Draw the starting points of sampling, ``sigma_0 * N(0, I)`` of shape ``(B, *D)``."""
        eps = standard_normal(shape, generator=generator, device=device, dtype=dtype)
        return self.prior_std() * eps

    def noise_to_signal(self, t: Tensor) -> Tensor:
        """EDM's sigma = sigma_t / alpha_t (inf where alpha_t = 0), ``(B,)``."""
        c = self.schedule(t)
        return c.sigma / c.alpha

    def sampling_interval(self, prediction: str, eps: float = 1e-3) -> tuple[float, float]:
        """The time interval ``[t_lo, t_hi]`` on which a prediction converts to a finite velocity.

        It is [0, 1] for a velocity prediction. A noise or score prediction needs alpha_t > 0, a
        data or score prediction needs sigma_t > 0 (both taken as > 1e-6), and each needs finite derivatives; at an
        endpoint where that fails, the interval is pulled in by ``eps``.
        """
        check_prediction(prediction)
        if prediction == "velocity":
            return 0.0, 1.0

        tiny = 1e-6  # cos(pi / 2) = 6e-17 is a zero, not a scale

        def ok(t: float) -> bool:
            c = self.schedule(torch.tensor([t], dtype=torch.float64))
            finite = all(torch.isfinite(v).all() for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))
            a_ok = prediction == "data" or bool(c.alpha > tiny)
            s_ok = prediction == "noise" or bool(c.sigma > tiny)
            return finite and a_ok and s_ok

        return (0.0 if ok(0.0) else eps), (1.0 if ok(1.0) else 1.0 - eps)
