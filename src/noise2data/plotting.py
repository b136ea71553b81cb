"""Plots (matplotlib, the ``plot`` extra): samples beside data, trajectories, path marginals,
training curves and quality against the number of function evaluations.

Each function writes a PNG to ``out`` (a path or a binary file object) and returns ``out``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

from .errors import require
from .paths import GaussianPath

Target = str | Path | BinaryIO  # where a PNG goes: a path or a binary file object


def _plt():
    mpl = require("matplotlib", "plot", "plotting")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _limits(*arrays: Tensor) -> tuple[tuple[float, float], tuple[float, float]]:
    pts = torch.cat([a.reshape(-1, 2) for a in arrays])
    lo = torch.quantile(pts, 0.002, dim=0)
    hi = torch.quantile(pts, 0.998, dim=0)
    pad = 0.08 * (hi - lo)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def plot_samples(samples: Tensor, data: Tensor | None, out: Target, title: str = "") -> Target:
    """Samples beside data: a scatter for 2-D samples, histograms of up to 4 coordinates otherwise.

    Args:
        samples: ``(n, *D)`` generated samples; data: ``(m, *D)`` real ones, or None.
    """
    plt = _plt()
    samples = samples.detach().float().cpu().flatten(1)
    data = data.detach().float().cpu().flatten(1) if data is not None else None
    if samples.shape[1] == 2:
        panels = [("data", data), ("samples", samples)] if data is not None else [("samples", samples)]
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
        xlim, ylim = _limits(*[p for _, p in panels])
        for ax, (name, pts) in zip(axes[0], panels, strict=True):
            ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.5, color="C0" if name == "data" else "C1")
            ax.set(xlim=xlim, ylim=ylim, title=f"{name} (n={len(pts)})", aspect="equal")
    else:
        k = min(4, samples.shape[1])
        fig, axes = plt.subplots(1, k, figsize=(3.6 * k, 3.2), squeeze=False)
        for i, ax in enumerate(axes[0]):
            if data is not None:
                ax.hist(data[:, i], bins=60, density=True, alpha=0.5, label="data")
            ax.hist(samples[:, i], bins=60, density=True, alpha=0.5, label="samples")
            ax.set_title(f"coordinate {i}")
        axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return out


def plot_trajectories(trajectory: Tensor, times: Tensor, out: Target, n_show: int = 300) -> Target:
    """Trajectories from noise to data: ``trajectory: (S + 1, B, *D)`` at ``times: (S + 1,)``.

    2-D data: paths in the plane, noise in grey, samples in colour. Otherwise the first
    coordinate of each path against t.
    """
    plt = _plt()
    traj = trajectory.detach().float().cpu()[:, :n_show].flatten(2)  # (S + 1, n, d)
    fig, ax = plt.subplots(figsize=(5, 5))
    if traj.shape[2] == 2:
        for i in range(traj.shape[1]):
            ax.plot(traj[:, i, 0], traj[:, i, 1], lw=0.4, alpha=0.4, color="C7")
        ax.scatter(traj[0, :, 0], traj[0, :, 1], s=3, color="k", label="t=0 (noise)")
        ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=3, color="C1", label="t=1 (samples)")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.plot(times.cpu(), traj[:, :, 0], lw=0.5, alpha=0.5)
        ax.set(xlabel="t", ylabel="coordinate 0")
    ax.set_title(f"trajectories ({traj.shape[0] - 1} steps)")
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return out


def plot_path_marginals(
    path: GaussianPath, data: Tensor, out: Target, times: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    seed: int = 0,
) -> Target:
    """Histograms of the path's marginal p_t (x_t = alpha_t x1 + sigma_t x0, x1 ~ data) at a few t.

    ``data: (n, 2)`` for 2-D histograms; other shapes show coordinate 0's density.
    """
    plt = _plt()
    g = torch.Generator().manual_seed(seed)
    data = data.detach().float().cpu()
    fig, axes = plt.subplots(1, len(times), figsize=(3.0 * len(times), 3.4), squeeze=False, layout="constrained")
    xs = [path.sample(data, torch.full((len(data),), float(t)), generator=g).x_t for t in times]
    if data[0].numel() == 2:
        xlim, ylim = _limits(*xs)
    for ax, t, x in zip(axes[0], times, xs, strict=True):
        x = x.flatten(1)
        if x.shape[1] == 2:
            ax.hist2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=90, range=[xlim, ylim], cmap="magma")
            ax.set_aspect("equal")
        else:
            ax.hist(x[:, 0], bins=80, density=True)
        ax.set_title(f"p_t, t = {t:g}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_training_curves(loss_rows: list[dict], eval_rows: list[dict], out: Target) -> Target:
    """The loss against the step, and beside it each periodic evaluation metric with its floor.

    ``loss_rows``: ``{"step", "loss"}`` dicts; ``eval_rows``: ``{"step", "eval": {name: value,
    name_floor: floor}}`` dicts (both as in ``metrics.jsonl``).
    """
    plt = _plt()
    names = sorted({k for r in eval_rows for k in r["eval"] if not k.endswith("_floor")})
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(4.6 * (1 + len(names)), 3.4), squeeze=False)
    ax = axes[0][0]
    ax.plot([r["step"] for r in loss_rows], [r["loss"] for r in loss_rows], lw=1)
    ax.set(xlabel="step", ylabel="training loss", title="loss")
    for ax, name in zip(axes[0][1:], names, strict=True):
        rows = [r for r in eval_rows if name in r["eval"]]
        ax.plot([r["step"] for r in rows], [r["eval"][name] for r in rows], marker="o", ms=3, label="EMA model")
        floors = [r["eval"].get(f"{name}_floor") for r in rows if r["eval"].get(f"{name}_floor") is not None]
        if floors:
            ax.axhline(floors[-1], color="k", ls="--", lw=1, label="noise floor")
        ax.set(xlabel="step", title=name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_quality_vs_nfe(curves: dict[str, list[tuple[int, float]]], floor: float | None, metric: str,
                        out: Target) -> Target:
    """``curves``: solver -> ``[(nfe, value), ...]``, on log-log axes, with the noise floor as a line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for solver, pts in curves.items():
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=solver)
    if floor is not None:
        ax.axhline(floor, color="k", ls="--", lw=1, label="noise floor")
    ax.set(xscale="log", yscale="log", xlabel="function evaluations (NFE)", ylabel=metric,
           title=f"{metric} against NFE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def image_grid(images: Tensor, nrow: int, value_range: tuple[float, float] = (-1.0, 1.0), pad: int = 1) -> Tensor:
    """Tile ``images: (N, C, H, W)`` into one ``(H', W', C)`` array in [0, 1], ``nrow`` images per row."""
    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    grid = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = x[i]
    return grid.permute(1, 2, 0)


def plot_image_grid(images: Tensor, out: Target, nrow: int, value_range: tuple[float, float] = (-1.0, 1.0),
                    scale: int = 4) -> Target:
    """Write ``images: (N, C, H, W)`` as one PNG grid (grey for 1 channel), each pixel ``scale`` x ``scale``."""
    plt = _plt()
    grid = image_grid(images, nrow, value_range)
    grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    arr = grid[..., 0].numpy() if grid.shape[2] == 1 else grid.numpy()
    plt.imsave(out, arr, cmap="gray" if arr.ndim == 2 else None, vmin=0.0, vmax=1.0)
    return out


def plot_image_panels(panels: Sequence[tuple[str, Tensor]], out: Target, nrow: int,
                      value_range: tuple[float, float] = (-1.0, 1.0), scale: int = 3) -> Target:
    """Image grids side by side, each titled: ``panels`` of ``(title, images (N, C, H, W))``, ``nrow`` per row.

    The figure is sized to the grids' pixels, so it carries no empty margins.
    """
    plt = _plt()
    grids = []
    for _, images in panels:
        g = image_grid(images, nrow, value_range).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        grids.append(g[..., 0].numpy() if g.shape[2] == 1 else g.numpy())
    h = max(g.shape[0] for g in grids)
    w = sum(g.shape[1] for g in grids)
    fig, axes = plt.subplots(1, len(grids), figsize=(w / 100 + 0.3 * len(grids), h / 100 + 0.45), dpi=100,
                             squeeze=False, gridspec_kw={"width_ratios": [g.shape[1] for g in grids]})
    for ax, (title, _), arr in zip(axes[0], panels, grids, strict=True):
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout(pad=0.3)
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return out


def _frame_indices(n_states: int, frames: int) -> list[int]:
    """Up to ``frames`` evenly spaced states, always the first (noise) and the last (data)."""
    if n_states <= frames:
        return list(range(n_states))
    return sorted({round(i * (n_states - 1) / (frames - 1)) for i in range(frames)})


def plot_image_trajectory(trajectory: Tensor, times: Tensor, out: Target, *, n_show: int = 8, frames: int = 10,
                          value_range: tuple[float, float] = (-1.0, 1.0), scale: int = 3) -> Target:
    """Denoising as a strip: ``trajectory: (S + 1, B, C, H, W)`` -> one row per sample (up to
    ``n_show``), one column per time (up to ``frames``, noise on the left, data on the right)."""
    keep = _frame_indices(trajectory.shape[0], frames)
    x = trajectory[keep, :n_show].transpose(0, 1)  # (n_show, F, C, H, W)
    plt = _plt()
    grid = image_grid(x.reshape(-1, *x.shape[2:]), len(keep), value_range)
    grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    arr = grid[..., 0].numpy() if grid.shape[2] == 1 else grid.numpy()
    fig, ax = plt.subplots(figsize=(arr.shape[1] / 100 + 0.4, arr.shape[0] / 100 + 0.6), dpi=100)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    cell = arr.shape[1] / len(keep)
    ax.set_xticks([cell * (i + 0.5) for i in range(len(keep))], [f"t={float(times[k]):.2f}" for k in keep],
                  fontsize=7)
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return out


def save_trajectory_gif(trajectory: Tensor, out: str | Path, *, nrow: int | None = None, frames: int = 40,
                        value_range: tuple[float, float] = (-1.0, 1.0), scale: int = 3,
                        duration_ms: int = 80) -> Path:
    """An animated GIF of image samples from noise to data: ``trajectory: (S + 1, B, C, H, W)``, one
    grid per frame (up to ``frames`` states), the last frame held three times as long."""
    Image = require("PIL.Image", "plot", "GIF export")
    keep = _frame_indices(trajectory.shape[0], frames)
    nrow = nrow or math.ceil(math.sqrt(trajectory.shape[1]))
    pictures = []
    for k in keep:
        grid = image_grid(trajectory[k], nrow, value_range)
        grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        arr = (grid * 255).round().to(torch.uint8).numpy()
        pictures.append(Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr))
    durations = [duration_ms] * (len(pictures) - 1) + [3 * duration_ms]
    out = Path(out)
    pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return out
