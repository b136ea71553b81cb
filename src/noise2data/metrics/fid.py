"""FID and KID between two sets of features, and the accuracy of class-conditional samples.

FID = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to the features,
with tr (S_a S_b)^(1/2) computed as the sum of square roots of the eigenvalues of the symmetric
S_a^(1/2) S_b S_a^(1/2) (float64, no complex parts to discard). KID is the unbiased MMD^2 with
the cubic polynomial kernel (x.y / F + 1)^3, averaged over random subsets (mean and std). As
every metric here, both are quoted beside the same quantity between two real sets (the floor).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserError
from .features import FeatureExtractor


def _sym_sqrt(s: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh(s)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """FID between features ``a: (n, F)`` and ``b: (m, F)``."""
    if a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise UserError(f"FID needs two feature sets of the same width with >= 2 rows, got {tuple(a.shape)}, "
                        f"{tuple(b.shape)}")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T), torch.cov(b.T)
    r = _sym_sqrt(s_a)
    tr_sqrt = torch.linalg.eigvalsh(r @ s_b @ r).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + s_a.trace() + s_b.trace() - 2 * tr_sqrt)


def kernel_inception_distance(a: Tensor, b: Tensor, *, subsets: int = 50, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``subsets`` random subsets of ``min(subset_size, n, m)`` rows each."""
    a, b = a.double(), b.double()
    f = a.shape[1]
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise UserError("KID needs at least 2 feature rows a side")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        kxx, kyy, kxy = ((x @ x.T / f + 1) ** 3, (y @ y.T / f + 1) ** 3, (x @ y.T / f + 1) ** 3)
        off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        vals.append(float(off - 2 * kxy.mean()))
    t = torch.tensor(vals)
    return float(t.mean()), float(t.std()) if len(vals) > 1 else 0.0


def image_quality(ext: FeatureExtractor, samples: Tensor, reference: Tensor, floor_reference: Tensor | None = None,
                  *, sample_labels: Tensor | None = None) -> dict:
    """FID and KID of ``samples: (n, C, H, W)`` against ``reference`` with their floors (real vs real).

    With ``sample_labels`` (the classes the samples were asked to be), also the extractor's
    accuracy on them: does the model draw the class it was asked for?
    """
    fs, fr = ext.features(samples), ext.features(reference)
    if not torch.isfinite(fs).all():
        raise UserError("the samples' features are NaN/Inf: the samples themselves are probably not finite")
    out = {"fid": frechet_distance(fs, fr), "kid": kernel_inception_distance(fs, fr)[0], **ext.info(),
           "n": len(samples)}
    if floor_reference is not None:
        ff = ext.features(floor_reference)
        out["fid_floor"] = frechet_distance(ff, fr)
        out["kid_floor"] = kernel_inception_distance(ff, fr)[0]
    if sample_labels is not None:
        out["class_accuracy"] = float((ext.predict(samples) == sample_labels.to(torch.long)).double().mean())
    return out
