"""What a kind of data (a modality) declares, so that shared code never asks which one it has.

A modality says how its data is loaded from a ``--data`` spec (and in which units and layout it
came), its prior p_init and its condition, its default model and training settings, how
samples are drawn, written, read back and plotted, which metrics ``eval`` computes and what the
report shows. Training, :class:`~noise2data.run.Run`, the CLI, evaluation and the report call
these methods on the run's modality (``run.modality``); a new kind of data is one subclass in its
own package plus one line in :mod:`noise2data.modalities.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import UserError

if TYPE_CHECKING:  # only for annotations: run.py imports this module
    from ..data import Standardizer
    from ..run import Run

NoiseFn = Callable[[Tensor, Tensor | None, torch.Generator], Tensor]  # (x1, cond, generator) -> x0 like x1
BatchConditionFn = Callable[[Tensor, Tensor | None, torch.Generator], Tensor]  # (x1, cond, gen) -> batch's cond
LossWeightFn = Callable[[Tensor], Tensor]  # cond -> weights of the loss's entries, broadcastable to (B, *D)
BatchIndexFn = Callable[[int, torch.Generator, Any], Tensor]  # (batch size, generator, device) -> indices (B,)
CouplingFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # (x0, x1, cond) -> x0 re-paired with x1's rows
LossFn = Callable[..., Tensor]  # (pred, sample, path, prediction, weight) -> (B,), as losses.prediction_loss
PredictFn = Callable[..., Tensor]  # (network, x_t, t, cond, generator) -> the prediction the loss regresses


@dataclass
class TrainingSet:
    """What training needs from a modality, built from the CLI's training options.

    Attributes:
        data: ``(N, *D)`` samples in the units the network sees before standardisation (or an
            object with ``__len__``, ``shape`` and ``__getitem__(indices)``, e.g. a streamed image source).
        standardizer: the map from data units to the model's units (identity where data is scaled).
        cond: the training condition: labels ``(N,)``, vectors ``(N, k)``, an atom mask ``(N, N_max)``, or None.
        guidable: True when ``cond`` is a condition that guidance can drop (labels, vectors).
        model_config: ``{"name": ..., **config}`` from which ``models.build_model`` builds the network.
        noise: draws x0 when p_init is not N(0, I) (see ``training.loop.training_step_loss``).
        batch_condition: draws each batch's condition from the batch (video: which frames are known).
        loss_weight: weights of the loss's entries from the condition (video: only the unknown frames).
        batches: draws each batch's indices (molecules: from one size band); default uniform with replacement.
        coupling: pairs each batch's noise with its data in the modality's own way (molecules: rotated and
            permuted onto each molecule), replacing the shared ``--coupling``.
        loss: the per-sample loss, in place of ``losses.prediction_loss`` (molecules: cross-entropy on types).
        predict: how a training step calls the network, in place of ``network(x_t, t, cond)`` (molecules:
            self-conditioning, which calls it twice); its random numbers come from the generator it is given.
        data_config: entries added to config.json's ``data`` section (units, classes, ...).
        extra_config: further top-level sections of config.json this modality reads back when sampling.
    """

    data: Any
    standardizer: Standardizer
    model_config: dict
    cond: Tensor | None = None
    guidable: bool = False
    noise: NoiseFn | None = None
    batch_condition: BatchConditionFn | None = None
    loss_weight: LossWeightFn | None = None
    batches: BatchIndexFn | None = None
    coupling: CouplingFn | None = None
    loss: LossFn | None = None
    predict: PredictFn | None = None
    data_config: dict = field(default_factory=dict)
    extra_config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SampleRequest:
    """What ``noise2data sample`` asked for; the modality draws, writes and plots accordingly."""

    n: int
    out: Path
    solver: str = "midpoint"
    steps: int = 8
    grid: str = "uniform"
    sde: bool = False
    diffusion: float = 0.5
    seed: int = 0
    batch_size: int | None = None
    label: int | None = None
    condition: tuple[float, ...] | None = None
    guidance: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    grid_per_class: int | None = None
    raw: bool = False
    plot: str | None = None
    trajectory_plot: str | None = None
    trajectory_gif: str | None = None
    # the user chose --solver, --steps or --nfe; if not, a modality may pick its measured sampler for a task
    sampler_given: bool = False
    guidance_given: bool = False  # the user chose --guidance; if not, a modality may pick its measured scale
    extra: dict = field(default_factory=dict)  # the run's modality's own options (Modality.sample_options)


@dataclass(frozen=True)
class EvalRequest:
    """What ``noise2data eval`` asked for (``metrics=None``: the modality's default metrics)."""

    n: int = 4000
    metrics: tuple[str, ...] | None = None
    solver: str = "midpoint"
    steps: int = 8
    grid: str = "uniform"
    data: str | None = None
    seed: int = 0
    nll_n: int = 1000
    repeats: int = 3
    features: str | None = None
    guidance: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    sampler_given: bool = False  # as in SampleRequest
    guidance_given: bool = False  # as in SampleRequest
    extra: dict = field(default_factory=dict)  # the run's modality's own options (Modality.eval_options)


@dataclass(frozen=True)
class ReportRequest:
    """What ``noise2data report`` asked for."""

    n: int = 2000
    metric: str = "w2"
    solvers: tuple[str, ...] = ("euler", "midpoint", "heun", "dpm++2m")
    nfes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    solver: str = "midpoint"  # the sampler of a table computed for the report (no current eval.json)
    nfe: int = 16
    seed: int = 0
    features: str | None = None
    guidance: float = 2.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    guidance_given: bool = False  # as in SampleRequest


@dataclass
class Section:
    """One part of a report: a heading and its HTML (figures are embedded as data URIs)."""

    title: str
    html: str


class Modality:
    """The interface every kind of data implements (see the module docstring).

    Class attributes:
        name: the registry name, stored in config.json as ``modality``.
        data_help: the ``--data`` specifications it reads, for ``train --help``.
        distributed: whether its training runs under torchrun.
        models: the model names that fit this data; the first is the default.
        defaults: training options that differ from the CLI's generic defaults (taken from what the
            modality's benchmark uses).
        sample_suffixes: the files ``sample --out`` can write.
        default_metrics: the metrics ``eval`` computes when ``--metrics`` is not given.
        eval_n: the samples ``eval`` draws when ``--n`` is not given.
        sample_options, eval_options: options of ``sample`` and ``eval`` that only this kind of data
            takes, as ``(flags, argparse keyword arguments)``; they reach it in ``request.extra``.
        own_train_options: the training options (``cli.train_options.OWN_FLAGS``) only some kinds of data take that
            this one does; another kind refuses them with one line.
        guidance_interval: the times t in [lo, hi] that classifier-free guidance applies to when
            ``--guidance-interval`` (or ``Run.sample``'s ``guidance_interval``) is not given.
    """

    name: str = ""
    data_help: str = ""
    distributed: bool = True
    models: tuple[str, ...] = ()
    defaults: dict = {}
    sample_suffixes: tuple[str, ...] = (".npy", ".npz")
    default_metrics: tuple[str, ...] = ()
    eval_n: int = 4000
    sample_options: tuple[tuple[tuple[str, ...], dict], ...] = ()
    eval_options: tuple[tuple[tuple[str, ...], dict], ...] = ()
    own_train_options: tuple[str, ...] = ()
    guidance_interval: tuple[float, float] = (0.0, 1.0)

    # ---- what the data is -------------------------------------------------------------------------
    def matches(self, spec: str) -> bool:
        """True when the ``--data`` specification names this kind of data."""
        raise NotImplementedError

    def owns(self, config: dict) -> bool:
        """True when a run's config.json (one without a ``modality`` entry: older runs) is of this kind."""
        spec = config.get("data", {}).get("spec") or config.get("cli", {}).get("data") or ""
        return self.matches(spec)

    def model_classes(self) -> dict[str, tuple[type, type]]:
        """Models this modality brings (name -> (module class, config class)) beyond the shared ones."""
        return {}

    def default_coupling(self, shape: tuple[int, ...], objective: str = "velocity") -> str:
        """The coupling ``--coupling auto`` (the default) trains with, for samples of ``shape`` and the
        training ``objective`` (velocity, data, meanflow, ...)."""
        return "independent"

    def check_model(self, model: str) -> None:
        if model not in self.models:
            raise UserError(f"--model {model} does not fit {self.name} data: use {' or '.join(self.models)}")

    def load(self, opts: dict, resumed: dict | None = None) -> TrainingSet:
        """The training set for the CLI's training options ``opts`` (``resumed``: the run's stored config)."""
        raise NotImplementedError

    def fresh(self, spec: str) -> bool:
        """True when ``spec`` is drawn in code, so that independent real samples are free."""
        return False

    def reference_points(self, run: Run, spec: str, *, n: int, seed: int, own: bool) -> Tensor:
        """Real points ``(N, *D)`` of ``spec`` in data units, to compare samples with (``own``: the
        run's training data; ``n`` and ``seed`` matter only where :meth:`fresh` draws are made)."""
        raise UserError(f"{self.name} runs are not compared point by point with real data: use 'noise2data eval'")

    # ---- sampling ----------------------------------------------------------------------------------
    def prior(self, run: Run, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws of p_init ``(n, *D)`` for :meth:`Run.sample` (default: the path's N(0, I))."""
        return run.path.sample_prior((n, *run.data_shape), generator=generator, device=run.device)

    def check_likelihood(self, run: Run) -> None:
        """Raise a :class:`UserError` when :meth:`Run.log_likelihood` does not apply to this kind of data."""

    def sample(self, run: Run, request: SampleRequest) -> str:
        """Draw what ``request`` asks for and write it; returns the line the CLI prints."""
        raise NotImplementedError

    def read_samples(self, path: str | Path) -> Any:
        """Read back a file that :meth:`sample` wrote (used by the modality contract test)."""
        raise NotImplementedError

    # ---- evaluation and report --------------------------------------------------------------------
    def evaluate(self, run: Run, request: EvalRequest) -> dict:
        """Metrics of the run's samples, each beside its floor (or the data's own row); JSON-ready."""
        raise NotImplementedError

    def format_eval(self, result: dict) -> str:
        """The plain-text table ``eval`` prints for :meth:`evaluate`'s result."""
        raise NotImplementedError

    def report(self, run: Run, request: ReportRequest) -> list[Section]:
        """The sections of this run's HTML report (the shared page adds the title, curves and config)."""
        raise NotImplementedError

    def train_features(self, spec: str, *, out: str, epochs: int | None, seed: int, clips: bool,
                       resize: int | None = None, pad: int = 0) -> str:
        """Train the in-domain feature extractor that FID-like metrics use, on ``spec``; returns the line to print.

        ``clips``: the user asked for a video extractor (``features --video``); ``resize``, ``pad``: images
        shaped as a run trained with ``--resize``/``--pad`` makes them."""
        raise UserError(f"no feature extractor is trained on {self.name} data ('{spec}'): extractors are for labelled "
                        "images or clips; see 'noise2data features --help'")

    def example(self, folder: Path) -> tuple[str, list[str], list[str]]:
        """A small dataset for the contract test, made in ``folder``: ``(--data spec, training flags, eval flags)``."""
        raise NotImplementedError
