"""Vectors: toy distributions, Gaussian mixtures and any ``(N, *D)`` array file.

Loader: :func:`noise2data.data.load_data` (toy names, ``gmm:FILE.json``, .npy/.npz/.pt/.csv),
standardised per feature. Prior: N(0, I). Condition: class labels (``--labels``) or vectors
(``--cond-file``). Model: the residual MLP. Samples: .npy/.npz/.pt/.csv in data units (the formats it
reads; .csv for samples of one dimension of features); plots are
scatters (2-D) or histograms. Metrics: W2, the debiased energy distance with its 95% interval,
MMD, precision, recall (and NLL) beside their floors. Report: samples beside data, trajectories, quality against NFE.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .base import ReportRequest, SampleRequest, Section, TrainingSet
from .tensors import TensorModality

IMAGE_ONLY = ("resize", "pad", "hflip", "stream")


class Vectors(TensorModality):
    name = "vectors"
    data_help = ("a toy name (checkerboard, moons, circles, 8gaussians, spirals; the suite: rings, wave, holes, "
                 "student, gmm6, gmm10), gmm:FILE.json, or an array file (.npy, .npz, .pt, .csv) of shape (N, *D)")
    models = ("mlp", "unet", "dit")  # an (N, C, H, W) array file fits the image networks too
    # the CLI's generic defaults are the vector ones (benchmarks/recipe.py), except MeanFlow's adaptive
    # weight: on 2-D sets plain MSE trains better jump models (checkerboard, 1 jump: 1.95x the W2 floor
    # against 3.04x with the paper's power 1; benchmarks/few_step.py)
    defaults: dict = {"mf_power": 0.0}
    default_metrics = ("w2", "energy_u", "mmd", "precision", "recall")
    sample_suffixes = (".npy", ".npz", ".pt", ".csv")  # what it reads, so samples go where the data came from

    def default_coupling(self, shape: tuple[int, ...], objective: str = "velocity") -> str:
        """Minibatch OT in blocks for 1- and 2-D points: at 8 evaluations it took W2 / floor from 2.64 to 1.70
        (wave), 1.72 to 1.32 (moons), 1.24 to 1.14 (rings) for 1.2-1.3x the step time; in 6-D it gained
        nothing (benchmarks/recipe.py). MeanFlow from scratch gains most: one jump 1.60 -> 0.97 (checkerboard),
        2.01 -> 1.05 (moons) W2 / floor (benchmarks/few_step.py). It needs scipy (the metrics extra); without it,
        independent."""
        import math

        from ..couplings import ot_available

        if math.prod(shape) <= 2 and ot_available():
            return "ot-blocks"
        return "independent"

    def default_x_octaves(self, shape: tuple[int, ...]) -> int:
        """Four octaves of sin/cos input features for 1- and 2-D points: with OT in blocks, W2 / floor at 8
        evaluations went from 1.70 to 1.46 (wave), 1.12 to 0.98 (rings), 1.26 to 1.21 (spirals) and stayed
        on circles and moons, for 3 % more time per step (benchmarks/recipe.py); none in more dimensions."""
        import math

        return 4 if math.prod(shape) <= 2 else 0

    def matches(self, spec: str) -> bool:
        return True  # toy names, gmm: files and array files; anything else gets the loader's error

    def fresh(self, spec: str) -> bool:
        from ..data import is_generated

        return is_generated(spec)

    def load(self, opts: dict, resumed: dict | None = None) -> TrainingSet:
        from ..data import Standardizer, load_data

        given = [f"--{k}" for k in IMAGE_ONLY if opts.get(k)]
        if given:
            raise UserError(f"{', '.join(given)} apply to image datasets (digits, mnist:DIR, images:...), not to "
                            f"{opts['data']}")
        data = load_data(opts["data"], n=opts["n_data"], seed=opts["seed"], key=opts["key"])
        return self.training_set(opts, data, Standardizer.fit(data, opts["standardize"]), None, resumed=resumed)

    def check_request(self, run, request: SampleRequest) -> None:  # noqa: ANN001
        super().check_request(run, request)
        if request.trajectory_gif or request.grid_per_class:
            raise UserError("--trajectory-gif and --grid-per-class are for image runs; this run's samples have shape "
                            f"{run.data_shape}: use --trajectory-plot, or --label for one class")
        if request.out.suffix == ".csv" and len(run.data_shape) != 1:
            raise UserError("a .csv holds one sample per row, and this run's samples have shape "
                            f"{tuple(run.data_shape)}: write .npy, .npz or .pt")

    def write(self, run, x: Tensor, request: SampleRequest, labels: Tensor | None) -> tuple:  # noqa: ANN001
        """``x: (n, *D)`` in data units: .npy/.npz as every tensor run writes them; .pt the tensor (a dict of
        ``samples`` and ``labels`` when the samples have classes); .csv one sample per row under a header
        ``x0,x1,...`` (labels, when given, in a last column ``label``)."""
        if request.out.suffix == ".pt":
            torch.save(x if labels is None else {"samples": x, "labels": labels}, request.out)
        elif request.out.suffix == ".csv":
            header = [f"x{i}" for i in range(x.shape[1])]
            cols = x.double().numpy()
            if labels is not None:
                header.append("label")
                cols = np.concatenate([cols, labels.double().numpy()[:, None]], axis=1)
            fmt = ["%.9g"] * x.shape[1] + (["%d"] if labels is not None else [])
            np.savetxt(request.out, cols, delimiter=",", header=",".join(header), comments="", fmt=fmt)
        else:
            return super().write(run, x, request, labels)
        return tuple(x.shape)

    def read_samples(self, path: str | Path) -> np.ndarray:
        """The samples of a file :meth:`write` wrote (a .csv's label column dropped)."""
        from ..data.arrays import read_array

        path = Path(path)
        if path.suffix == ".csv":
            with path.open() as f:
                named = f.readline().strip().split(",")
            arr = np.asarray(read_array(path))
            return arr[:, :-1] if named[-1] == "label" else arr
        return np.asarray(read_array(path, "samples" if path.suffix in (".npz", ".pt") else None))

    def plots(self, run, res, x: Tensor, request: SampleRequest, how: str) -> list[str]:  # noqa: ANN001
        from ..plotting import plot_samples, plot_trajectories

        written = []
        if request.plot:
            plot_samples(x, self.plot_reference(run), request.plot, title=f"{how}, {res.cost_words()}")
            written.append(request.plot)
        if request.trajectory_plot and res.trajectory is not None:
            plot_trajectories(res.trajectory, res.times, request.trajectory_plot)
            written.append(request.trajectory_plot)
        return written

    def plot_reference(self, run) -> Tensor | None:  # noqa: ANN001
        """Training data to plot beside samples, when it can still be had."""
        cli = run.config.get("cli", {})
        try:
            data = self.reference_points(run, cli["data"], n=cli.get("n_data", 100_000), seed=cli.get("seed", 0),
                                         own=True)
        except (UserError, KeyError):
            return None
        return data[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:4000]]

    def report(self, run, request: ReportRequest) -> list[Section]:  # noqa: ANN001
        from ..report import vector_report

        return vector_report(run, request)

    def example(self, folder: Path) -> tuple[str, list[str], list[str]]:
        return "moons", ["--n-data", "2000", "--hidden", "32", "--depth", "2"], ["--n", "200", "--metrics", "w2,mmd"]


VECTORS = Vectors()
