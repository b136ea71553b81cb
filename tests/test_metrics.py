"""Sample metrics against closed forms and independent implementations."""

from __future__ import annotations

import math
import statistics

import pytest
import scipy.stats
import torch

from noise2data.errors import UserError
from noise2data.metrics import (
    SAMPLE_METRICS,
    combine,
    compare,
    energy_distance,
    format_results,
    mmd,
    precision_recall,
    ratio_interval,
    sliced_w2,
    w2_exact,
)
from noise2data.metrics.compare import t_quantile_975


def normal(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


@pytest.mark.parametrize("metric", [w2_exact, sliced_w2, mmd, energy_distance])
def test_distances_vanish_on_identical_samples_and_grow_with_shift(metric):
    x = normal(600, 3, 0)
    assert metric(x, x) == pytest.approx(0.0, abs=1e-6)
    vals = [metric(normal(600, 3, 1, s), x) for s in (0.0, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(vals, vals[1:], strict=False)), vals


def test_sliced_w2_matches_the_gaussian_closed_form():
    # N(0, I) vs N(m, I) in d dimensions: SW2^2 = E_theta[(theta . m)^2] = |m|^2 / d
    d, m = 4, torch.tensor([1.0, 2.0, 0.0, -1.0], dtype=torch.float64)
    x, y = normal(5000, d, 0), normal(5000, d, 1) + m
    expected = float(m.norm()) / math.sqrt(d)
    assert sliced_w2(x, y, projections=1500) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("n,m", [(500, 500), (500, 320), (7, 13)])
def test_sliced_w2_in_one_dimension_is_exact_w2(n, m):
    # one dimension: every direction is +-1, so the sliced distance is the exact one (POT's LP)
    x, y = normal(n, 1, 0), normal(m, 1, 1, 0.7) * 1.3
    assert sliced_w2(x, y, projections=10) == pytest.approx(w2_exact(x, y), rel=1e-6)


def test_energy_distance_agrees_with_scipy_in_one_dimension():
    x, y = normal(700, 1, 0), normal(500, 1, 1, 0.4)
    # scipy returns sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)
    expected = scipy.stats.energy_distance(x[:, 0].numpy(), y[:, 0].numpy()) ** 2
    assert energy_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_mmd_matches_the_gaussian_closed_form():
    # With an RBF kernel of width l, for X ~ N(a, s^2 I), X' ~ N(b, s^2 I) independent in d dims:
    # E k(X, X') = (l^2 / (l^2 + 2 s^2))^(d/2) exp(-|a - b|^2 / (2 (l^2 + 2 s^2)))
    d, delta, h, scales = 2, 0.8, 1.5, (0.5, 1.0, 2.0)
    x, y = normal(4000, d, 0, delta / math.sqrt(d)), normal(4000, d, 1)

    def ek(l2: float, dist2: float) -> float:
        return (l2 / (l2 + 2)) ** (d / 2) * math.exp(-dist2 / (2 * (l2 + 2)))

    mmd2 = sum(2 * ek((s * h) ** 2, 0.0) - 2 * ek((s * h) ** 2, delta**2) for s in scales) / len(scales)
    assert mmd(x, y, scales=scales, bandwidth=h) == pytest.approx(math.sqrt(mmd2), rel=0.08)


def test_blocked_pairwise_sums_do_not_depend_on_block_size(monkeypatch):
    from noise2data.metrics import samples

    x, y = normal(300, 5, 0), normal(250, 5, 1, 0.3)
    full = (mmd(x, y), energy_distance(x, y), precision_recall(x, y))
    monkeypatch.setattr(samples, "BLOCK", 37)
    blocked = (mmd(x, y), energy_distance(x, y), precision_recall(x, y))
    assert blocked[0] == pytest.approx(full[0], rel=1e-9)
    assert blocked[1] == pytest.approx(full[1], rel=1e-9)
    assert blocked[2] == pytest.approx(full[2])


def test_precision_recall_see_mode_dropping_and_outliers():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    real = centres[torch.randint(0, 2, (2000,), generator=g)] + 0.3 * torch.randn(2000, 2, generator=g,
                                                                                 dtype=torch.float64)
    one_mode = centres[0] + 0.3 * torch.randn(2000, 2, generator=g, dtype=torch.float64)
    p, r = precision_recall(one_mode, real)
    assert p > 0.9 and 0.4 < r < 0.6  # realistic but covers half the data
    far = one_mode + torch.tensor([0.0, 20.0], dtype=torch.float64)
    assert precision_recall(far, real) == (0.0, 0.0)
    p_same, r_same = precision_recall(real, real)
    assert p_same == 1.0 and r_same == 1.0


def test_compare_reports_each_metric_beside_its_floor():
    ref, floor_ref = normal(800, 2, 0), normal(800, 2, 1)
    good, bad = normal(800, 2, 2), normal(800, 2, 3, 1.0)
    res_good = compare(good, ref, floor_ref, metrics=SAMPLE_METRICS)
    res_bad = compare(bad, ref, floor_ref, metrics=SAMPLE_METRICS)
    for name in ("w2", "sw2", "mmd", "energy"):
        assert res_good[name].floor == res_bad[name].floor > 0
        assert res_good[name].ratio < 2.5 < res_bad[name].ratio
    assert res_bad["precision"].value < res_good["precision"].value
    table = format_results(res_bad)
    assert "w2" in table and "floor" in table


def test_compare_rejects_bad_input():
    x = normal(100, 2, 0)
    with pytest.raises(UserError, match="unknown metric"):
        compare(x, x, metrics=["w3"])
    with pytest.raises(UserError, match="same size"):
        compare(x, x, normal(50, 2, 1), metrics=["mmd"])
    with pytest.raises(UserError, match="dimension"):
        compare(x, normal(100, 3, 0), metrics=["mmd"])
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        compare(bad, x, metrics=["energy"])
    with pytest.raises(UserError, match="empty"):
        mmd(x[:0], x)


def test_combine_gives_means_and_spreads_over_repeats():
    reps = [compare(normal(400, 2, 10 + s), normal(400, 2, 20 + s), normal(400, 2, 30 + s), metrics=["w2", "recall"])
            for s in range(3)]
    res = combine(reps)
    for name in ("w2", "recall"):
        vals = torch.tensor([r[name].value for r in reps], dtype=torch.float64)
        floors = torch.tensor([r[name].floor for r in reps], dtype=torch.float64)
        assert res[name].value == pytest.approx(float(vals.mean()))
        assert res[name].value_sd == pytest.approx(float(vals.std()), rel=1e-6)
        assert res[name].floor == pytest.approx(float(floors.mean()))
        assert res[name].floor_sd == pytest.approx(float(floors.std()), rel=1e-6)
        assert res[name].repeats == 3
    assert res["w2"].ratio_low <= res["w2"].ratio <= res["w2"].ratio_high
    assert res["recall"].ratio_low is None  # a higher-is-better score has no floor ratio


@pytest.mark.parametrize("df", [1, 2, 5, 12, 30, 31, 50, 200])
def test_t_quantile_matches_scipy(df):
    assert t_quantile_975(df) == pytest.approx(scipy.stats.t.ppf(0.975, df), abs=1.5e-3)


def test_ratio_interval_is_exact_when_values_are_a_multiple_of_their_floors():
    floors = [0.04, 0.09, 0.06, 0.05]
    r, lo, hi = ratio_interval([2.5 * f for f in floors], floors)
    assert r == pytest.approx(2.5) and lo == pytest.approx(2.5) and hi == pytest.approx(2.5)
    with pytest.raises(ValueError, match="R >= 2"):
        ratio_interval([1.0], [1.0])


def test_ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    # floors and values share a reference term (as paired W2s do), plus their own noise; true ratio 1.3
    g = torch.Generator().manual_seed(0)
    trials, covered, widths, unpaired = 2000, 0, [], []
    for _ in range(trials):
        shared = 1 + 0.3 * torch.randn(12, generator=g, dtype=torch.float64)
        floors = shared + 0.2 * torch.randn(12, generator=g, dtype=torch.float64)
        values = 1.3 * shared + 0.2 * torch.randn(12, generator=g, dtype=torch.float64)
        r, lo, hi = ratio_interval(values.tolist(), floors.tolist())
        covered += lo <= 1.3 <= hi
        widths.append(hi - lo)
        _, lo_u, hi_u = ratio_interval(values.tolist(), floors.flip(0).tolist())  # the pairing broken
        unpaired.append(hi_u - lo_u)
    assert 0.92 <= covered / trials <= 0.97
    # the covariance term pays: the same draws with the pairing broken give wider intervals
    assert statistics.mean(widths) < 0.8 * statistics.mean(unpaired)


def test_a_ratio_whose_interval_reaches_one_is_within_noise():
    same = [compare(normal(300, 2, 40 + s), normal(300, 2, 50 + s), normal(300, 2, 60 + s), metrics=["w2"])
            for s in range(4)]
    far = [compare(normal(300, 2, 40 + s, shift=1.0), normal(300, 2, 50 + s), normal(300, 2, 60 + s),
                   metrics=["w2"]) for s in range(4)]
    assert combine(same)["w2"].within_noise is True
    assert combine(far)["w2"].within_noise is False and combine(far)["w2"].ratio_low > 1
    assert "ratio [" in format_results(combine(same))


def test_too_few_draws_are_undecided_not_within_noise():
    """A model far from the data whose ratio interval over 2 repeats still reaches 1 (and 2) is "too few samples
    to tell", never "within sampling noise"; more repeats resolve it, and equal laws stay within noise."""
    from noise2data.metrics.compare import MetricResult, verdict

    def draws(shift: float, repeats: int, n: int) -> list:
        return [compare(normal(n, 2, 40 + s, shift=shift), normal(n, 2, 50 + s), normal(n, 2, 60 + s),
                        metrics=["w2"]) for s in range(repeats)]

    wide = MetricResult("w2", 0.30, 0.11, 500, False, floor_sd=0.04, value_sd=0.03, repeats=3, ratio_low=0.3,
                        ratio_high=5.0)
    assert wide.within_noise and wide.undecided and wide.as_dict()["undecided"]
    assert verdict(wide).startswith("too few samples to tell") and verdict(wide.as_dict()) == verdict(wide)
    assert "--repeats" in format_results({"w2": wide}) and "within sampling noise" not in format_results({"w2": wide})
    tight = MetricResult("w2", 0.12, 0.11, 500, False, repeats=3, ratio_low=0.8, ratio_high=1.4)
    assert tight.within_noise and not tight.undecided and verdict(tight) == "within sampling noise"
    assert not combine(draws(0.0, 4, 300))["w2"].undecided
    far = combine(draws(0.6, 8, 300))["w2"]
    assert far.ratio_low > 1 and not far.within_noise and not far.undecided
