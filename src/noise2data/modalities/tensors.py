"""What vectors and images share: dense tensors ``(N, *D)`` under N(0, I), optional labels or
vector conditions with guidance, sampling through :meth:`Run.sample`, sample metrics with floors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError, require
from ..guidance import interval_words
from .base import EvalRequest, Modality, SampleRequest, TrainingSet


class TensorModality(Modality):
    """The parts of a dense-tensor modality that vectors and images have in common."""

    default_metrics = ("w2", "mmd", "energy", "precision", "recall")

    # ---- training ----------------------------------------------------------------------------------
    def conditions(self, opts: dict, n: int, own_labels: Tensor | None) -> Tensor | None:
        """Labels ``(n,)`` (``--labels`` or, with ``--cond label``, the dataset's own) or vectors ``(n, k)``."""
        from ..data import load_conditions, load_labels

        labels = load_labels(opts["labels"], n, opts["label_key"]) if opts["labels"] else None
        if labels is None and opts["cond"] == "label":
            if own_labels is None:
                raise UserError(f"--cond label uses the labels of an image dataset with classes; {opts['data']} has "
                                "none: pass --labels FILE")
            labels = own_labels
        conds = load_conditions(opts["cond_file"], n, opts["cond_key"]) if opts["cond_file"] else None
        if conds is not None and labels is not None:
            raise UserError("a model takes class labels or vector conditions (--cond-file), not both")
        return labels if labels is not None else conds

    def default_x_octaves(self, shape: tuple[int, ...]) -> int:
        """The MLP's input octaves (``MLPConfig.x_octaves``) when ``--x-octaves`` is not given: none."""
        return 0

    def training_set(self, opts: dict, data, stats, own_labels: Tensor | None,  # noqa: ANN001
                     data_config: dict | None = None, resumed: dict | None = None) -> TrainingSet:
        """The :class:`TrainingSet` of loaded ``data`` with its conditions and the model ``opts`` asks for
        (a ``resumed`` run's config keeps the model it was built with)."""
        from ..models import MLPConfig, model_config_class

        self.check_model(opts["model"])
        cond = self.conditions(opts, len(data), own_labels)
        is_label = cond is not None and not cond.dtype.is_floating_point
        num_classes = int(cond.max()) + 1 if is_label else 0
        cond_dim = cond.shape[1] if cond is not None and not is_label else 0
        shape = tuple(data.shape[1:])
        kw = {"time_embedding": opts["time_embedding"], "num_classes": num_classes, "cond_dim": cond_dim}
        cfg_cls = model_config_class(opts["model"])
        if hasattr(cfg_cls, "preset"):
            if opts.get("x_octaves"):
                raise UserError(f"--x-octaves is an option of the MLP, not of --model {opts['model']}: drop it")
            mcfg = cfg_cls.preset(opts["preset"], shape, **kw)
        else:
            if resumed is not None:  # runs from before the field have none
                opts["x_octaves"] = resumed["model"].get("x_octaves", 0)
            elif opts.get("x_octaves") is None:  # resolved once, so config.json and a resume keep it
                opts["x_octaves"] = self.default_x_octaves(shape)
            mcfg = MLPConfig(data_shape=shape, hidden=opts["hidden"], depth=opts["depth"],
                             x_octaves=opts["x_octaves"], **kw)
        return TrainingSet(data=data, standardizer=stats, model_config=mcfg.to_dict(), cond=cond,
                           guidable=cond is not None,
                           data_config={"labels": opts["labels"], "num_classes": num_classes, "cond_dim": cond_dim,
                                        **(data_config or {})})

    # ---- sampling ----------------------------------------------------------------------------------
    def condition_of(self, run, request: SampleRequest) -> int | tuple[float, ...] | None:  # noqa: ANN001
        """The one condition ``request`` asks to sample (a class, a vector, or None), checked against the run."""
        if request.label is not None and run.config["model"].get("cond_dim"):
            raise UserError(f"this run is conditioned on vectors of {run.config['model']['cond_dim']} numbers, not on "
                            "classes: pass --condition y1,y2,...")
        if request.condition is not None and request.label is not None:
            raise UserError("give --label (a class) or --condition (a vector), not both")
        label = request.label if request.condition is None else list(request.condition)
        if label is None and request.guidance != 1.0 and not request.grid_per_class:
            raise UserError("--guidance needs --label or --condition (or --grid-per-class): guidance pulls samples "
                            "towards a condition")
        return label

    def sampler_options(self, request: SampleRequest) -> dict:
        return dict(solver=request.solver, steps=request.steps, grid=request.grid, sde=request.sde,
                    diffusion=request.diffusion, seed=request.seed, batch_size=request.batch_size,
                    guidance=request.guidance, guidance_interval=request.guidance_interval)

    def check_request(self, run, request: SampleRequest) -> None:  # noqa: ANN001
        """Refuse what this modality cannot write (before any sampling)."""
        if request.out.suffix not in self.sample_suffixes:
            raise UserError(f"a {self.name} run writes {', '.join(self.sample_suffixes)}; got --out {request.out}")
        if request.sde and request.diffusion < 0:
            raise UserError(f"--diffusion must be >= 0, got {request.diffusion}")
        if request.plot or request.trajectory_plot or request.out.suffix == ".png":
            require("matplotlib", "plot", "plotting")  # before sampling, not after
        if request.trajectory_gif:
            require("PIL.Image", "plot", "GIF export")

    def sample(self, run, request: SampleRequest) -> str:  # noqa: ANN001
        self.check_request(run, request)
        label = self.condition_of(run, request)
        kw = self.sampler_options(request)
        labels = None
        if request.grid_per_class:
            classes = int(run.config["model"].get("num_classes", 0) or 0)
            if not classes or request.out.suffix != ".png":
                raise UserError("--grid-per-class needs a class-conditional image run and a .png --out")
            # the same seed for every class and every checkpoint, so grids compare across runs
            rows = [run.sample(request.grid_per_class, label=k, **kw) for k in range(classes)]
            res, x = rows[0], torch.cat([r.x for r in rows])
            labels = torch.arange(classes).repeat_interleave(request.grid_per_class)
        else:
            trajectory = bool(request.trajectory_plot or request.trajectory_gif)
            res = run.sample(request.n, trajectory=trajectory, label=label, **kw)
            x = res.x
            if isinstance(label, int):
                labels = torch.full((request.n,), label)
        if not torch.isfinite(x).all():
            raise UserError(f"sampling produced NaN/Inf ({request.solver}, {request.steps} steps): try more --steps "
                            "or another --solver; nothing was written")
        request.out.parent.mkdir(parents=True, exist_ok=True)
        shape = self.write(run, x, request, labels)
        how = f"SDE g={request.diffusion}" if request.sde else request.solver
        if label is not None or request.grid_per_class:
            how += f", guidance {request.guidance:g}{interval_words(request.guidance_interval, request.guidance)}" + (
                f", condition {','.join(f'{v:g}' for v in request.condition)}" if request.condition else
                f", label {label}" if label is not None else "")
        line = f"wrote {request.out} {shape} ({how}, {res.cost_words()}, step {run.step})"
        for written in self.plots(run, res, x, request, how):
            line += f"\nwrote {written}"
        return line

    def write(self, run, x: Tensor, request: SampleRequest, labels: Tensor | None) -> tuple:  # noqa: ANN001
        """Write samples ``x: (n, *D)`` in data units as .npy (the array) or .npz (``samples`` and ``labels``)."""
        arr = x.numpy()
        save_array(request.out, arr, labels)
        return tuple(arr.shape)

    def plots(self, run, res, x: Tensor, request: SampleRequest, how: str) -> list[str]:  # noqa: ANN001
        """Write the plots ``request`` asks for; returns their paths."""
        raise NotImplementedError

    def read_samples(self, path: str | Path) -> np.ndarray:
        from ..data.arrays import read_array

        return np.asarray(read_array(path, "samples" if Path(path).suffix == ".npz" else None))

    # ---- evaluation --------------------------------------------------------------------------------
    def eval_metrics(self, request: EvalRequest) -> tuple[str, ...]:
        return request.metrics or self.default_metrics

    def evaluate(self, run, request: EvalRequest) -> dict:  # noqa: ANN001
        from ..evaluation import evaluate_run

        return evaluate_run(run, n=request.n, metrics=self.eval_metrics(request), solver=request.solver,
                            steps=request.steps, grid=request.grid, data=request.data, seed=request.seed,
                            nll_n=request.nll_n, features=request.features, guidance=request.guidance,
                            guidance_interval=request.guidance_interval, repeats=request.repeats)

    def format_eval(self, result: dict) -> str:
        from ..evaluation import format_eval

        return format_eval(result)

    def reference_points(self, run, spec: str, *, n: int, seed: int, own: bool) -> Tensor:  # noqa: ANN001
        from ..data import load_data

        if self.fresh(spec):
            return load_data(spec, n=n, seed=seed)
        return load_data(spec, key=run.config.get("cli", {}).get("key") if own else None)


def save_array(out: Path, arr: np.ndarray, labels: Tensor | None = None) -> None:
    """``.npy``: the array alone; ``.npz``: ``samples`` (and ``labels`` when the samples have classes)."""
    if out.suffix == ".npz":
        extra = {"labels": labels.numpy()} if labels is not None else {}
        np.savez(out, samples=arr, **extra)
    else:
        np.save(out, arr)
