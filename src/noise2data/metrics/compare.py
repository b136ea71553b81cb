"""Every sample metric by name, each reported beside its noise floor.

A metric between a model's samples and real data means little alone: two independent real
samples of the same size are not at distance zero. :func:`compare` therefore measures the same
metric between the reference and a second, independent real sample of the same size (the floor)
and reports both; ``ratio = value / floor`` near 1 means "as close as real data gets". A value
at or below its floor is "within sampling noise", never "better than data". The debiased distances
(``energy_u``, ``mmd2_u``) are 0 in expectation for equal laws, so they rank models where W2
saturates; they carry a 95 % interval, and an interval that holds 0 is "within sampling noise".
Over repeats, a floor-relative ratio carries its own 95 % interval (:func:`ratio_interval`): on
sets of a few large parts (two moons, a thin curve) one W2 floor at n = 4000 moves by 35-55 %
from draw to draw with the share of points each part happens to get, so a ratio from one or two
pairs can be off by as much as the gaps it is meant to show. An interval that holds 1 and also 2
says the draws were too few to tell ("undecided"), not that the model is as good as data.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from torch import Tensor

from ..errors import UserError
from .debiased import DEBIASED, with_interval
from .distances import energy_distance, mmd, sliced_w2
from .precision_recall import precision_recall
from .samples import as_points
from .wasserstein import EXACT_LIMIT, w2_exact


@dataclass(frozen=True)
class MetricSpec:
    """A named sample metric: what it computes and which direction is better."""

    name: str
    higher_is_better: bool
    description: str


SPECS: dict[str, MetricSpec] = {s.name: s for s in (
    MetricSpec("w2", False, f"exact 2-Wasserstein distance (POT; at most {EXACT_LIMIT} points)"),
    MetricSpec("sw2", False, "sliced 2-Wasserstein distance, 500 random directions, any n and dimension"),
    MetricSpec("mmd", False, "MMD, sum of RBF kernels at 0.25-4x the reference median distance"),
    MetricSpec("energy", False, "energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'|"),
    MetricSpec("precision", True, "fraction of samples on the real k-NN manifold (k=3)"),
    MetricSpec("recall", True, "fraction of real points on the samples' k-NN manifold (k=3)"),
    MetricSpec("energy_u", False, "debiased energy distance (U-statistic, 0 for equal laws), with a 95% interval"),
    MetricSpec("mmd2_u", False, "debiased MMD^2 (U-statistic, 0 for equal laws), with a 95% interval"),
)}
SAMPLE_METRICS = tuple(SPECS)
DEFAULT_METRICS = ("w2", "mmd", "energy", "precision", "recall")
# a ratio interval over repeats that reaches past this (and holds 1) cannot tell a model from real data: "undecided"
UNDECIDED_RATIO = 2.0


@dataclass(frozen=True)
class MetricResult:
    """One metric's value and its noise floor (None when no second real sample was given).

    Combined over R independent repeats (:func:`combine`), ``value`` and ``floor`` are means and
    ``value_sd``/``floor_sd`` their standard deviations: how much each moves from draw to draw.
    Debiased distances also carry a 95 % interval ``[ci_low, ci_high]`` for ``value``; biased ones
    with a floor, over R >= 2 repeats, a 95 % interval ``[ratio_low, ratio_high]`` for ``ratio``.
    """

    name: str
    value: float
    floor: float | None
    n: int
    higher_is_better: bool
    floor_sd: float | None = None
    value_sd: float | None = None
    repeats: int = 1
    ci_low: float | None = None
    ci_high: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None

    @property
    def debiased(self) -> bool:
        return self.name in DEBIASED

    @property
    def ratio(self) -> float | None:
        """value / floor for biased distances (1 is the best reachable); None without a floor."""
        if self.floor is None or self.higher_is_better or self.floor <= 0 or self.debiased:
            return None
        return self.value / self.floor

    @property
    def within_noise(self) -> bool | None:
        """True when the value cannot be told from real data at this sample size.

        Debiased distances: the interval holds 0. Others over repeats: the ratio's interval reaches
        1 (for lower-is-better distances); else the value is at or beyond its floor (the same metric
        between two real samples). None when there is neither interval nor floor.
        """
        if self.debiased and self.ci_low is not None:
            return self.ci_low <= 0.0
        if self.ratio_low is not None:
            return self.ratio_low <= 1.0
        if self.floor is None:
            return None
        return self.value >= self.floor if self.higher_is_better else self.value <= self.floor

    @property
    def undecided(self) -> bool:
        """Within noise only because the draws are too few to say: the ratio's interval over repeats holds 1 and
        also 2, so a model twice as far from the data as real data is would score the same. (Debiased distances
        have no such scale: their interval speaks for itself.)"""
        return bool(self.within_noise and not self.debiased and self.ratio_high is not None
                    and self.ratio_high > UNDECIDED_RATIO)

    def as_dict(self) -> dict:
        return asdict(self) | {"ratio": self.ratio, "within_noise": self.within_noise, "undecided": self.undecided}


def check_metric_names(names: Sequence[str], known: Sequence[str] = SAMPLE_METRICS) -> list[str]:
    """Validate metric names, with the list of valid ones in the error."""
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}: expected some of {', '.join(known)}")
    if not names:
        raise UserError(f"no metric given: expected some of {', '.join(known)}")
    return names


def evaluate_pair(x: Tensor | np.ndarray, y: Tensor | np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Each metric in ``names`` between samples ``x`` and reference ``y`` (precision and recall share a pass)."""
    fns: dict[str, Callable[[], float]] = {
        "w2": lambda: w2_exact(x, y), "sw2": lambda: sliced_w2(x, y),
        "mmd": lambda: mmd(x, y), "energy": lambda: energy_distance(x, y),
        **{name: (lambda fn=fn: fn(x, y)) for name, fn in DEBIASED.items()},
    }
    out: dict[str, float] = {}
    if {"precision", "recall"} & set(names):
        out["precision"], out["recall"] = precision_recall(x, y)
    for name in names:
        if name not in out:
            out[name] = fns[name]()
    return {n: out[n] for n in names}


def compare(
    samples: Tensor | np.ndarray,
    reference: Tensor | np.ndarray,
    floor_reference: Tensor | np.ndarray | None = None,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, MetricResult]:
    """Metrics of ``samples: (n, *D)`` against ``reference: (m, *D)``, with the floor.

    Args:
        samples: the model's samples.
        reference: real data.
        floor_reference: a second real sample, independent of ``reference``, with as many points
            as ``samples``; the floor is each metric between it and ``reference``.
        metrics: names from ``SAMPLE_METRICS``.
    """
    names = check_metric_names(metrics)
    n = len(as_points(samples))
    plain = [m for m in names if m not in DEBIASED]
    values = evaluate_pair(samples, reference, plain)
    intervals = {m: with_interval(samples, reference, m) for m in names if m in DEBIASED}
    values |= {m: v[0] for m, v in intervals.items()}
    floors: dict[str, float] | None = None
    if floor_reference is not None:
        if len(floor_reference) != n:
            raise UserError(f"the floor's real sample must have the same size as the samples ({n}), "
                            f"got {len(floor_reference)}")
        floors = evaluate_pair(floor_reference, reference, names)
    return {
        name: MetricResult(name, values[name], floors[name] if floors else None, n, SPECS[name].higher_is_better,
                           ci_low=intervals[name][1] if name in intervals else None,
                           ci_high=intervals[name][2] if name in intervals else None)
        for name in names
    }


# two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """Student's t 97.5 % quantile: the table to 30 degrees of freedom, Cornish-Fisher beyond (error < 1e-3)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def ratio_interval(values: Sequence[float], floors: Sequence[float]) -> tuple[float, float, float]:
    """``mean(values) / mean(floors)`` and its 95 % interval, from R >= 2 paired repeats.

    Repeat i measured ``values[i]`` (model vs reference i) and ``floors[i]`` (real vs the same
    reference i), so the two move together through the reference; the delta method with their
    covariance, var(r) ~ (s_v^2 - 2 r s_vf + r^2 s_f^2) / (R mean(f)^2), and Student's t with R - 1
    degrees of freedom give the interval (its low end clipped at 0). Returns (ratio, low, high).
    """
    v, f = np.asarray(values, dtype=float), np.asarray(floors, dtype=float)
    if v.shape != f.shape or v.ndim != 1 or len(v) < 2:
        raise ValueError(f"need R >= 2 paired values and floors, got {v.shape} and {f.shape}")
    fm = float(f.mean())
    if fm <= 0:
        raise ValueError(f"the floors' mean must be > 0, got {fm}")
    r = float(v.mean()) / fm
    cov = np.cov(v, f)  # unbiased, (2, 2)
    var = max(float(cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]), 0.0) / (len(v) * fm * fm)
    half = t_quantile_975(len(v) - 1) * math.sqrt(var)
    return r, max(r - half, 0.0), r + half


def combine(repeats: Sequence[dict[str, MetricResult]]) -> dict[str, MetricResult]:
    """Means and standard deviations over independent repeats of :func:`compare`.

    Each repeat should use its own samples, reference and floor sample: a single W2 at n = 4000
    moves by +-25 % from draw to draw, through the reference as much as through the samples.
    """
    if len(repeats) == 1:
        return dict(repeats[0])

    out = {}
    for name, first in repeats[0].items():
        vals = [r[name].value for r in repeats]
        floors = [r[name].floor for r in repeats if r[name].floor is not None]
        mean = statistics.mean(vals)
        lo = hi = None
        if first.ci_low is not None:  # independent repeats: the mean's half-width shrinks by sqrt(R)
            halves = [(r[name].ci_high - r[name].ci_low) / 2 for r in repeats]
            half = (sum(h * h for h in halves) / len(halves)) ** 0.5 / len(halves) ** 0.5
            lo, hi = mean - half, mean + half
        r_lo = r_hi = None
        if len(floors) == len(vals) and not first.debiased and not first.higher_is_better and min(floors) > 0:
            _, r_lo, r_hi = ratio_interval(vals, floors)
        out[name] = MetricResult(name, mean, statistics.mean(floors) if floors else None, first.n,
                                 first.higher_is_better, statistics.stdev(floors) if len(floors) > 1 else None,
                                 statistics.stdev(vals), len(repeats), lo, hi, r_lo, r_hi)
    return out


def verdict(r: MetricResult | dict) -> str:
    """A few words on where a value stands against sampling noise (of a result or its :meth:`~MetricResult.as_dict`)."""
    d = r.as_dict() if isinstance(r, MetricResult) else r
    if d.get("undecided"):
        return f"too few samples to tell (the ratio's interval holds 1 and {UNDECIDED_RATIO:g}): raise --n or --repeats"
    if d.get("within_noise") is None:
        return ""
    if d["within_noise"]:
        return "within sampling noise"
    return "above noise (interval excludes 0)" if d["name"] in DEBIASED else ""


def format_results(results: dict[str, MetricResult]) -> str:
    """A plain-text table: metric, value, floor, value/floor, the 95 % interval (of the debiased value, or of
    the ratio over repeats), verdict."""
    lines = [f"{'metric':<10} {'value':>10} {'+- sd':>8} {'floor':>10} {'+- sd':>8} {'ratio':>7}  better  "
             "interval / verdict"]
    for r in results.values():
        value_sd = f"{r.value_sd:8.4f}" if r.value_sd is not None else f"{'':>8}"
        floor = f"{value_sd} {r.floor:10.4f}" if r.floor is not None else f"{value_sd} {'-':>10}"
        floor += f" {r.floor_sd:8.4f}" if r.floor_sd is not None else f" {'':>8}"
        ratio = f"{r.ratio:6.2f}x" if r.ratio is not None else f"{'-':>7}"
        note = f"[{r.ci_low:.4f}, {r.ci_high:.4f}] " if r.ci_low is not None else ""
        if r.ratio_low is not None:
            note += f"ratio [{r.ratio_low:.2f}, {r.ratio_high:.2f}] "
        note += verdict(r)
        lines.append(f"{r.name:<10} {r.value:10.4f} {floor} {ratio}  {'higher' if r.higher_is_better else 'lower ':<6}"
                     f"  {note}".rstrip())
    return "\n".join(lines)
