"""Molecules: ``molecules:FILE`` (.npz from ``noise2data data qm9``, .xyz or .sdf).

Loader: :class:`MoleculeSet`, encoded as ``(M, N_max, 3 + T)`` (positions, scaled one-hot types).
Prior: N(0, I) on the zero-centre-of-mass subspace, padding 0. Condition: the atom mask. Model:
the EGNN (E(3)-equivariant). Training: batches of one size band (:mod:`.batches`), the loss a mean over
each molecule's real atoms with cross-entropy on types for a data prediction (:mod:`.loss`),
``--coupling ot`` = noise permuted and rotated onto each molecule (:mod:`.alignment`).
Samples: .sdf, .xyz or .npz, plotted in 3-D with their formulas.
Metrics: atom and molecule stability, validity, uniqueness, novelty, beside the data's own row.
Report: generated molecules beside real ones and that table.
"""

from __future__ import annotations

import html
import json
import time
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError
from ..guidance import interval_words
from ..modalities.base import EvalRequest, Modality, ReportRequest, SampleRequest, Section, TrainingSet
from ..samplers.budget import STAGES

EGNN_PRESETS = {"tiny": {"hidden": 64, "layers": 4}, "small": {"hidden": 128, "layers": 6},
                "base": {"hidden": 256, "layers": 9}}
TYPE_SCALE = 0.25  # one-hot types x 0.25: positions (std ~1.5 A) lead, types follow
TRAIN_SMILES = "train_smiles.json"
PROPERTY_REQUESTS = 200  # at most, per mode, for the property errors of a conditioned run's eval
PREFIX = "molecules:"
# options that have no meaning for molecules (the mask is the condition)
REFUSED = {"labels": "--labels", "resize": "--resize", "hflip": "--hflip",
           "stream": "--stream", "dequantize": "--dequantize", "eval_every": "--eval-every"}


class Molecules(Modality):
    name = "molecules"
    data_help = "molecules:FILE (.npz from 'noise2data data qm9', .xyz or .sdf)"
    distributed = True
    models = ("egnn",)
    own_train_options = ("size_bands", "rbf", "self_condition", "position_weight")
    # the tiny EGNN for a CPU; the recipe from the QM9 ablation (benchmarks/qm9.py, 6 CPU minutes per row): size
    # bands halve the step time (atom stability 21.3 -> 26.5%, validity 22.4 -> 32.6%); data prediction with
    # cross-entropy and t ~ Beta(2, 1) raise atom stability to 32.5% and uniqueness 38 -> 51%; noise aligned to
    # each molecule (--coupling ot) cut validity to 8%, so it stays off. At the 30-minute budget, 16 radial basis
    # functions of distances with self-conditioning (auto: on for a data prediction) raised atom stability 61.9 ->
    # 65.1% and validity 26.8 -> 35.1%. lr 2e-3 (was 5e-4): 10 minutes give 66.2% atom stability against 33.7%
    # (1e-3: 55.8%), and the 30-minute run scores 83.2 / 7.1 / 58.4 / 99.0% (atom / molecule stability, validity,
    # uniqueness) against 65.1 / 0.1 / 35.1 / 78.1%. The position error weighted by min(SNR, 5) (auto: with a
    # data prediction) on top: 88.6 / 19.9 / 60.3 / 99.7% in 30 minutes. label_dropout: of the properties, with
    # --cond-file
    defaults = {"model": "egnn", "preset": "tiny", "batch_size": 64, "lr": 2e-3, "standardize": "none",
                "label_dropout": 0.1, "size_bands": 8, "objective": "data", "time_dist": "beta:2,1",
                "rbf": 16, "self_condition": "auto", "position_weight": "auto"}
    sample_suffixes = (".sdf", ".xyz", ".npz")
    sample_options = (
        (("--composition",), {"help": "molecules: heavy atoms per element as a hard constraint, e.g. C6N1O1 "
                                      "(hydrogens drawn from training molecules of that formula; or C6N1O1H13)"}),
        (("--atoms",), {"type": int, "help": "molecules: atoms per molecule (default: drawn from the training sizes)"}),
    )
    default_metrics = ("stability", "validity", "uniqueness", "novelty")

    def matches(self, spec: str) -> bool:
        return spec.startswith(PREFIX)

    def owns(self, config: dict) -> bool:
        return "molecules" in config or config.get("model", {}).get("name") == "egnn"

    def default_coupling(self, shape: tuple[int, ...], objective: str = "velocity") -> str:
        """Independent noise: aligning it to each molecule (--coupling ot) lowered validity in the QM9 ablation."""
        return "independent"

    def model_classes(self) -> dict[str, tuple[type, type]]:
        from .egnn import EGNN, EGNNConfig

        return {"egnn": (EGNN, EGNNConfig)}

    def load(self, opts: dict, resumed: dict | None = None) -> TrainingSet:
        from ..data import Standardizer
        from .alignment import align_noise
        from .batches import SizeBands
        from .data import MoleculeSet
        from .egnn import EGNNConfig
        from .loss import atom_weight, molecule_loss, parse_position_weight
        from .properties import PROPERTIES, read_properties
        from .self_conditioning import self_conditioned_prediction
        from .space import SizeDistribution, atom_mask, drop_properties, encode, sample_prior, sizes_by_composition

        self.check_model(opts["model"])
        given = [flag for key, flag in REFUSED.items() if opts.get(key)]
        if opts.get("cond") not in (None, "none") or opts.get("pad"):
            given.append("--cond/--pad")
        if given:
            raise UserError(f"{', '.join(given)} do not apply to molecules: their condition is the atom mask")
        if opts["preset"] not in EGNN_PRESETS:
            raise UserError(f"unknown EGNN preset '{opts['preset']}': expected one of {', '.join(EGNN_PRESETS)}")
        coupling = opts.get("coupling", "auto")
        coupling = self.default_coupling((), opts["objective"]) if coupling == "auto" else coupling
        if coupling.partition(":")[0] == "ot-blocks":
            raise UserError("--coupling ot-blocks pairs noise across a batch; for molecules use --coupling ot (each "
                            "molecule's noise permuted and rotated onto it) or independent")
        if opts["objective"] not in ("velocity", "data", "meanflow"):
            raise UserError(f"the EGNN predicts a velocity (--objective velocity or meanflow) or the clean molecule "
                            f"(--objective data), not --objective {opts['objective']}")
        position_weight = opts.get("position_weight") or "uniform"
        if resumed is not None and "position_weight" not in resumed.get("cli", {}):
            position_weight = "uniform"  # a run from before the option trained with uniform weights
        if position_weight == "auto":  # Min-SNR for a data prediction, the only loss it applies to
            position_weight = "min-snr:5" if opts["objective"] == "data" else "uniform"
        weighting = parse_position_weight(position_weight)  # (kind, cap), once: the loss runs every step
        if weighting[0] != "uniform" and opts["objective"] != "data":
            raise UserError("--position-weight weights the error of a data prediction: add --objective data")
        data = MoleculeSet.read(opts["data"][len(PREFIX):])
        x1 = encode(data, TYPE_SCALE)  # (M, N, 3 + T)
        n_max = data.max_atoms
        cond, section, drop, k = data.mask, {}, None, 0
        if opts.get("cond_file"):  # properties: the mask as 0/1, then the standardised properties
            values = read_properties(opts["cond_file"], len(data))  # (M, k)
            k = values.shape[1]
            mean, std = values.mean(0), values.std(0).clamp(min=1e-6)
            cond = torch.cat([data.mask.float(), ((values - mean) / std).float()], 1)
            p = float(opts["label_dropout"])
            drop = lambda x, c, g: drop_properties(c, n_max, p, g)  # noqa: E731
            section = {"properties": {"names": list(PROPERTIES[:k]), "mean": mean.tolist(),
                                      "std": std.tolist(), "file": str(opts["cond_file"])}}
        if resumed is not None:  # the network the run was built with (one from before --rbf: no basis functions)
            built = resumed.get("model", {})
            rbf, self_condition = int(built.get("rbf", 0)), bool(built.get("self_condition"))
        else:
            rbf, asked = int(opts.get("rbf") or 0), opts.get("self_condition")
            # auto: on with a data prediction, which self-conditioning needs
            self_condition = opts["objective"] == "data" if asked in (None, "auto") else bool(asked)
        mcfg = EGNNConfig(max_atoms=n_max, time_embedding=opts.get("time_embedding") or "sinusoidal",
                          prediction="data" if opts["objective"] == "data" else "velocity", type_scale=TYPE_SCALE,
                          cond_dim=k, rbf=rbf, self_condition=self_condition,
                          **EGNN_PRESETS[opts["preset"]])
        bands = int(opts.get("size_bands") or 1)
        return TrainingSet(
            data=x1, standardizer=Standardizer.identity(tuple(x1.shape[1:])), model_config=mcfg.to_dict(),
            cond=cond, guidable=drop is not None, batch_condition=drop,
            noise=lambda x, c, g: sample_prior(atom_mask(c, n_max), generator=g, dtype=x.dtype),
            batches=SizeBands(data.sizes(), bands) if bands > 1 else None,
            coupling=(lambda x0, x1, c: align_noise(x0, x1, atom_mask(c, n_max))) if coupling == "ot" else None,
            loss=partial(molecule_loss, type_scale=TYPE_SCALE, position_weight=weighting),
            loss_weight=lambda c: atom_weight(atom_mask(c, n_max)),
            predict=self_conditioned_prediction if self_condition else None,
            data_config={"molecules": len(data), "max_atoms": n_max},
            extra_config={"molecules": {"type_scale": TYPE_SCALE, "position_weight": position_weight,
                                        "sizes": SizeDistribution.fit(data).to_dict(),
                                        "sizes_by_composition": sizes_by_composition(data), **section}})

    # ---- sampling ----------------------------------------------------------------------------------
    def prior(self, run, n: int, generator: torch.Generator) -> Tensor:  # noqa: ANN001
        raise UserError(f"{run.run_dir} is a molecule run: Run.sample does not draw atom counts and masks; use "
                        "noise2data.molecules.sampling.sample_molecules")

    def check_likelihood(self, run) -> None:  # noqa: ANN001
        raise UserError(f"{run.run_dir} is a molecule run: its density lives on each molecule's zero-centre-of-mass "
                        "subspace; use noise2data.molecules.likelihood.molecule_log_likelihood(run, molecules)")

    def sample(self, run, request: SampleRequest) -> str:  # noqa: ANN001
        from .output import plot_molecules, write_molecules
        from .sampling import sample_molecules

        if request.out.suffix not in self.sample_suffixes:
            raise UserError(f"a molecule run writes {', '.join(self.sample_suffixes)}; got --out {request.out}")
        if request.label is not None or request.grid_per_class or request.sde or request.trajectory_plot \
                or request.trajectory_gif:
            raise UserError("molecule runs sample with an ODE solver, without labels, grids or trajectories")
        from .properties import parse_composition

        extra = request.extra
        composition = parse_composition(extra["composition"]) if extra.get("composition") else None
        if extra.get("atoms") is not None and composition is not None:
            raise UserError("give --composition or --atoms, not both (a composition fixes the atom count)")
        t0 = time.perf_counter()
        mols = sample_molecules(run, request.n, solver=request.solver, steps=request.steps, seed=request.seed,
                                batch_size=request.batch_size or 100, guidance=request.guidance,
                                interval=request.guidance_interval,
                                condition=torch.tensor(request.condition) if request.condition is not None else None,
                                composition=composition, atoms=extra.get("atoms"))
        write_molecules(mols, request.out)
        how = f"{request.solver}, {request.steps} steps" + (
            f", {request.steps * STAGES[request.solver]} NFE" if request.solver in STAGES else "")  # dopri5 adapts
        if request.condition is not None:
            how += (f", condition {','.join(f'{v:g}' for v in request.condition)}, guidance {request.guidance:g}"
                    f"{interval_words(request.guidance_interval, request.guidance)}")
        line = (f"wrote {request.out}: {len(mols)} molecules ({how}, step {run.step}, "
                f"{time.perf_counter() - t0:.1f} s)")
        if request.plot:
            plot_molecules(mols, request.plot)
            line += f"\nwrote {request.plot}"
        return line

    def read_samples(self, path: str | Path) -> list[tuple[Tensor, Tensor]]:
        from .data import MoleculeSet

        data = MoleculeSet.read(path)
        return [data.molecule(i) for i in range(len(data))]

    # ---- evaluation and report --------------------------------------------------------------------
    def training_data(self, run):  # noqa: ANN001, ANN201 - a MoleculeSet
        from .data import MoleculeSet

        return MoleculeSet.read(run.config["data"]["spec"][len(PREFIX):])

    def evaluate(self, run, request: EvalRequest) -> dict:  # noqa: ANN001
        from .metrics import dataset_metrics, molecule_metrics
        from .sampling import sample_molecules

        if request.metrics and set(request.metrics) - set(self.default_metrics):
            raise UserError(f"molecule runs report {', '.join(self.default_metrics)} (all at once); got "
                            f"--metrics {','.join(request.metrics)}")
        t0 = time.perf_counter()
        mols = sample_molecules(run, request.n, solver=request.solver, steps=request.steps, seed=request.seed)
        secs = time.perf_counter() - t0
        data = self.training_data(run)
        res = molecule_metrics(mols, training_smiles(run, data))
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(request.seed))[:request.n]
        rows = {"data (training conformers)": dataset_metrics(data.subset(idx)), f"model, step {run.step}": res}
        out = {"run": str(run.run_dir), "step": run.step, "n": request.n,
               "sampler": {"solver": request.solver, "steps": request.steps, "seconds": secs},
               "metrics": {k: {m: v for m, v in r.items() if m != "smiles"} for k, r in rows.items()}}
        if run.config["molecules"].get("properties") is not None:  # how close samples land to a request
            from .property_errors import property_error_table, property_requests

            requests = property_requests(data, min(request.n, PROPERTY_REQUESTS), seed=request.seed + 3)
            out["properties"] = property_error_table(run, requests, guidance=request.guidance,
                                                     solver=request.solver, steps=request.steps, seed=request.seed,
                                                     interval=request.guidance_interval)
        return out

    def format_eval(self, result: dict) -> str:
        from .metrics import format_metrics

        text = format_metrics(result["metrics"])
        if "properties" in result:
            from .property_errors import format_property_errors

            n = next(iter(result["properties"].values()))["n"]
            text += (f"\nproperty errors ({n} requests: properties of training molecules; MAE over valid "
                     f"samples for rings and TPSA):\n" + format_property_errors(result["properties"]))
        return text

    def report(self, run, request: ReportRequest) -> list[Section]:  # noqa: ANN001
        from ..report import png_data_uri
        from .output import plot_molecules
        from .sampling import sample_molecules

        n = min(request.n, 200)
        result = self.evaluate(run, EvalRequest(n=n, solver="heun", steps=50, seed=request.seed,  # a property
                                                guidance=request.guidance,  # run's table: a guided row at --guidance
                                                guidance_interval=request.guidance_interval))
        mols = sample_molecules(run, 6, solver="heun", steps=50, seed=request.seed + 1)
        data = self.training_data(run)
        real = [data.molecule(i) for i in torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:6]]
        gen_uri = png_data_uri(lambda f: plot_molecules(mols, f))
        real_uri = png_data_uri(lambda f: plot_molecules(real, f))
        cols = ("atom_stability", "molecule_stability", "validity", "uniqueness", "novelty")
        head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols)
        body = "".join(
            f"<tr><td>{html.escape(name)}</td>"
            + "".join(f"<td class=num>{_percent(r.get(c))}</td>" for c in cols) + "</tr>"
            for name, r in result["metrics"].items())
        table = (f"<p>{n} generated molecules (heun, 50 steps) beside {n} of the training conformers scored the same "
                 f"way (the data's own row is the ceiling).</p><table><tr><th></th>{head}</tr>{body}</table>")
        sections = [Section("Chemistry", table)]
        if "properties" in result:  # a property-conditioned run: how close samples land to a request
            from .property_errors import COLUMNS

            head = "".join(f"<th>{c.replace('mae_', 'MAE ').replace('_', ' ')}</th>" for c in COLUMNS)
            body = "".join(
                f"<tr><td>{html.escape(name)}</td>" + "".join(
                    f"<td class=num>{_percent(r.get(c)) if c in ('exact_composition', 'valid') else _number(r.get(c))}"
                    "</td>" for c in COLUMNS) + "</tr>"
                for name, r in result["properties"].items())
            sections.append(Section("Property conditioning", (
                "<p>Samples asked for the properties of training molecules (heavy atoms per element, rings, TPSA): "
                "mean absolute errors over valid samples, the share with exactly the requested heavy atoms, and the "
                f"share valid.</p><table><tr><th></th>{head}</tr>{body}</table>")))
        return [*sections,
                Section("Generated molecules", f"<img alt=\"generated molecules\" src=\"{gen_uri}\">"),
                Section("Real molecules", f"<img alt=\"real molecules\" src=\"{real_uri}\">")]

    def example(self, folder: Path) -> tuple[str, list[str], list[str]]:
        from .build import build_conformers

        smiles = ["C", "CC", "CO", "C=O", "CN", "CCO", "CC=O", "C#N", "CCN", "OCO", "CF", "NC=O"] * 2
        data, _ = build_conformers(smiles, seed=0, workers=1)
        path = data.save(folder / "mols.npz")
        return f"{PREFIX}{path}", ["--batch-size", "16"], ["--n", "12", "--steps", "4"]


def _percent(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _number(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def training_smiles(run, data=None) -> set[str]:  # noqa: ANN001
    """SMILES of the run's training conformers (``data``, read from the run's file when None), perceived the
    way samples are (cached in the run)."""
    from .metrics import dataset_metrics

    cache = Path(run.run_dir) / TRAIN_SMILES
    if cache.is_file():
        return set(json.loads(cache.read_text()))
    data = data if data is not None else MOLECULES.training_data(run)
    smiles = dataset_metrics(data)["smiles"]
    cache.write_text(json.dumps(smiles))
    return set(smiles)


MOLECULES = Molecules()
