"""Images: ``digits``, ``mnist:DIR``, ``images:FOLDER`` and ``images:FILE.npz``.

Loader: :func:`noise2data.data.image_dataset`, channels-first in [-1, 1] (``--resize``, ``--pad``,
``--hflip``, ``--stream``), with the source's units recorded so samples go back in them. Prior:
N(0, I). Condition: the dataset's classes (``--cond label``), ``--labels`` or ``--cond-file``.
Models: U-Net (default, tiny preset for a CPU), DiT, MLP. Samples: PNG grids, .npy/.npz in the
source's units and layout (``--raw``: the model's tensor). Metrics: FID, KID and class accuracy
with an in-domain extractor. Report: sample grids beside real images, per class with and
without guidance, and the FID table when an extractor is given.
"""

from __future__ import annotations

import html
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError
from ..guidance import interval_words
from .base import EvalRequest, ReportRequest, SampleRequest, Section, TrainingSet
from .tensors import TensorModality, save_array

VALUE_RANGE = (-1.0, 1.0)  # what image models see, and what Run.sample returns for images


class Images(TensorModality):
    name = "images"
    data_help = ("images: digits, mnist:DIR (IDX files), images:FOLDER (PNG/JPEG, subfolders as classes), "
                 "images:FILE.npz")
    models = ("unet", "dit", "mlp")
    # from benchmarks/mnist.py: the tiny U-Net, batch 128, lr 1e-3 with 200 warm-up steps (~30 CPU minutes)
    defaults = {"model": "unet", "preset": "tiny", "batch_size": 128, "lr": 1e-3, "warmup_steps": 200,
                "steps": 6000, "checkpoint_every": 500, "standardize": "none"}
    sample_suffixes = (".png", ".npy", ".npz")
    default_metrics = ("fid", "kid")
    # classifier-free guidance on the last 70% of the way: on class-conditional MNIST (README, 3 paired eval
    # seeds, midpoint 8 NFE) FID 0.32 / 0.41 at w = 2 / 3 against 0.51 / 0.86 guided throughout, class accuracy
    # 98.5 / 99.2% against 99.9 / 100%, 13 network evaluations instead of 16
    guidance_interval = (0.3, 1.0)

    def matches(self, spec: str) -> bool:
        from ..data import is_image_dataset

        return is_image_dataset(spec)

    def default_coupling(self, shape: tuple[int, ...], objective: str = "velocity") -> str:
        """Exact minibatch OT (within each class) for jump models: MeanFlow from scratch on class-conditional
        MNIST, 3000 steps, one jump 1.33x the 64-step base's FID with it against 1.67x without (paired over 6
        draws; benchmarks/few_step.py); 1.39x after 2000 steps. Flow models stay independent: OT bought
        nothing at 8 evaluations and did not help their distillation. It needs scipy (the metrics extra);
        without it, independent."""
        from ..couplings import ot_available

        if objective == "meanflow" and ot_available():
            return "ot"
        return "independent"

    def load(self, opts: dict, resumed: dict | None = None) -> TrainingSet:
        from ..data import Standardizer, image_dataset
        from ..data.image_files import ImageSource
        from ..data.image_units import image_units

        data, own_labels = image_dataset(opts["data"], resize=opts["resize"], pad=opts["pad"],
                                         stream=bool(opts["stream"]))
        streaming = isinstance(data, ImageSource)
        if streaming and opts["standardize"] != "none":
            raise UserError("streamed images are used in [-1, 1] as they are: pass --standardize none")
        shape = tuple(data.shape[1:])
        stats = Standardizer.identity(shape) if streaming else Standardizer.fit(data, opts["standardize"])
        units = image_units(opts["data"], shape[0])
        return self.training_set(opts, data, stats, own_labels, {"units": units.to_dict()}, resumed=resumed)

    def units(self, run):  # noqa: ANN001, ANN201 - an ImageUnits
        from ..data.image_units import ImageUnits, image_units

        stored = run.config["data"].get("units")
        if stored:
            return ImageUnits(**stored)
        return image_units(run.config["data"].get("spec", ""), run.data_shape[0], probe=False)

    # ---- sampling ----------------------------------------------------------------------------------
    def check_request(self, run, request: SampleRequest) -> None:  # noqa: ANN001
        super().check_request(run, request)
        if request.trajectory_gif and request.grid_per_class:
            raise UserError("--trajectory-gif animates the samples of one draw, not --grid-per-class")

    def write(self, run, x: Tensor, request: SampleRequest, labels: Tensor | None) -> tuple:  # noqa: ANN001
        from ..plotting import plot_image_grid

        if request.out.suffix == ".png":
            ncol = request.grid_per_class or _columns(len(x))
            plot_image_grid(x, request.out, ncol, value_range=VALUE_RANGE)
            return tuple(x.shape)
        arr = x.numpy() if request.raw else self.units(run).to_user(x)
        save_array(request.out, arr, labels)
        return tuple(arr.shape)

    def plots(self, run, res, x: Tensor, request: SampleRequest, how: str) -> list[str]:  # noqa: ANN001
        from ..plotting import plot_image_panels, plot_image_trajectory, save_trajectory_gif

        written = []
        if request.plot:
            real = self.real_images(run, min(len(x), 64))
            cols = request.grid_per_class or _columns(min(len(x), 64))
            panels = [("real", real)] if real is not None else []
            panels.append((f"samples ({how}, {res.cost_words()})", x[:64]))
            plot_image_panels(panels, request.plot, cols, VALUE_RANGE)
            written.append(request.plot)
        if request.trajectory_plot and res.trajectory is not None:
            plot_image_trajectory(res.trajectory, res.times, request.trajectory_plot, value_range=VALUE_RANGE)
            written.append(request.trajectory_plot)
        if request.trajectory_gif and res.trajectory is not None:
            save_trajectory_gif(res.trajectory[:, :64], request.trajectory_gif, value_range=VALUE_RANGE)
            written.append(request.trajectory_gif)
        return written

    def real_images(self, run, n: int, labels: Tensor | None = None) -> Tensor | None:  # noqa: ANN001
        """``n`` training images (a fixed draw; of the classes ``labels`` when given), or None if unreadable."""
        try:
            images, own = self.reference_data(run)
        except UserError:
            return None
        g = torch.Generator().manual_seed(0)
        if labels is None or own is None:
            return images[torch.randperm(len(images), generator=g)[:n]]
        picks = [torch.nonzero(own == k)[:, 0] for k in labels.tolist()]
        return images[torch.stack([p[torch.randint(len(p), (1,), generator=g)[0]] for p in picks])]

    def reference_data(self, run, spec: str | None = None) -> tuple[Tensor, Tensor | None]:  # noqa: ANN001
        """Images of ``spec`` (default: the run's training data, with its resizing and padding) and labels."""
        from ..data import image_dataset

        cli = run.config.get("cli", {})
        own = spec is None
        spec = spec or cli.get("data") or run.config["data"].get("spec")
        data, labels = image_dataset(spec, resize=cli.get("resize") if own else None,
                                     pad=(cli.get("pad") or 0) if own else 0, stream=bool(cli.get("stream")))
        return data, labels

    def reference_points(self, run, spec: str, *, n: int, seed: int, own: bool) -> Tensor:  # noqa: ANN001
        if not own and not self.matches(spec):  # a held-out array file of images in data units
            return super().reference_points(run, spec, n=n, seed=seed, own=False)
        return self.reference_data(run, None if own else spec)[0]

    def read_samples(self, path: str | Path):  # noqa: ANN201
        if Path(path).suffix == ".png":
            from ..data.image_files import decode

            return decode(Path(path), 3).numpy()
        return super().read_samples(path)

    # ---- evaluation and report --------------------------------------------------------------------
    def eval_metrics(self, request: EvalRequest) -> tuple[str, ...]:
        if request.metrics:
            return request.metrics
        if request.features is None:
            raise UserError("image runs are scored with fid,kid on an in-domain extractor: train one with "
                            "'noise2data features --data ... --out FILE' and pass --features FILE (or name other "
                            "metrics with --metrics, e.g. sw2,mmd)")
        return self.default_metrics

    def report(self, run, request: ReportRequest) -> list[Section]:  # noqa: ANN001
        from ..plotting import plot_image_panels, plot_image_trajectory
        from ..report import png_data_uri

        classes = int(run.config["model"].get("num_classes", 0) or 0)
        sections = []
        kw = dict(solver="heun", steps=16, seed=request.seed)
        if classes:
            per = 8
            labels = torch.arange(classes).repeat_interleave(per)
            real = self.real_images(run, len(labels), labels)
            panels = [("real", real)] if real is not None else []
            during = interval_words(request.guidance_interval, request.guidance)
            for w in dict.fromkeys((1.0, request.guidance)):
                outs = [run.sample(per, label=k, guidance=w, guidance_interval=request.guidance_interval, **kw)
                        for k in range(classes)]
                panels.append((f"samples, guidance w = {w:g}" + (during if w != 1.0 else ""),
                               torch.cat([o.x for o in outs])))
            cols = per
            caption = "One row per class (heun, 16 steps, 32 NFE); guidance w = 1 is the conditional model" + (
                f", w = {request.guidance:g}{during} pulls harder towards the class ({outs[0].cost_words()})."
                if request.guidance != 1.0 else ".")
        else:
            x = run.sample(64, **kw).x
            real = self.real_images(run, 64)
            panels = ([("real", real)] if real is not None else []) + [("samples (heun, 32 NFE)", x)]
            cols, caption = 8, "Samples beside real training images (heun, 16 steps)."
        uri = png_data_uri(lambda f: plot_image_panels(panels, f, cols, VALUE_RANGE))
        sections.append(Section("Samples beside real images", f"<p class=note>{caption}</p>"
                                f"<img alt=\"samples beside real images\" src=\"{uri}\">"))
        traj = run.sample(8, solver="heun", steps=16, seed=request.seed + 1, trajectory=True)
        uri = png_data_uri(lambda f: plot_image_trajectory(traj.trajectory, traj.times, f, value_range=VALUE_RANGE))
        sections.append(Section("From noise to data", f"<img alt=\"trajectories\" src=\"{uri}\">"))
        if request.features:
            res = self.evaluate(run, EvalRequest(n=request.n, metrics=("fid", "kid"), features=request.features,
                                                 seed=request.seed, guidance=request.guidance if classes else 1.0,
                                                 guidance_interval=request.guidance_interval))
            sections.insert(0, Section("Image quality", _image_table(res)))
        else:
            sections.insert(0, Section("Image quality", "<p class=note>No feature extractor given: pass "
                                       "<code>--features FILE</code> to show FID, KID and class accuracy.</p>"))
        return sections

    def train_features(self, spec: str, *, out: str, epochs: int | None, seed: int, clips: bool,
                       resize: int | None = None, pad: int = 0) -> str:
        """A classifier of the images' classes: MNIST trains on its training split and validates on its test split;
        digits and ``images:FOLDER`` (subfolders as classes) / ``images:FILE.npz`` (with ``labels``) hold out every
        fifth image. With ``resize``/``pad`` the images are shaped as a run trained with them makes its samples."""
        from ..data import image_dataset
        from ..data.images import LabelledImages, load_labelled_images
        from ..metrics.features import save_extractor, train_feature_net

        if clips:
            raise UserError(f"--video trains on clips; {spec} holds images: give video:FILE")
        if spec.startswith("mnist:"):
            train_set, val_set = (self._labelled(load_labelled_images(spec, split), resize, pad)
                                  for split in ("train", "test"))
        else:
            if spec.startswith("images:"):
                images, labels = image_dataset(spec, resize=resize, pad=pad)
                if not isinstance(images, torch.Tensor):
                    raise UserError(f"{spec} is too large to hold in memory for 'features': give a subset")
                if labels is None or int(labels.max()) < 1:
                    raise UserError(f"{spec} has no classes to learn: the extractor is a classifier; put each class "
                                    "in its own subfolder, or save 'labels' beside 'images' in the .npz")
                full = LabelledImages(images, labels.long(), (-1.0, 1.0), spec.rpartition("/")[2])
            else:  # digits
                full = self._labelled(load_labelled_images(spec), resize, pad)
            val = torch.arange(len(full.labels)) % 5 == 0  # one set: every fifth image validates
            train_set = LabelledImages(full.images[~val], full.labels[~val], full.value_range, f"{full.name}-train")
            val_set = LabelledImages(full.images[val], full.labels[val], full.value_range, f"{full.name}-val")
        default_epochs = 3 if len(train_set.labels) > 20_000 else 30
        ext = train_feature_net(train_set, val_set, epochs=epochs or default_epochs, seed=seed)
        save_extractor(ext, out)
        return f"wrote {out}: validation accuracy {ext.val_accuracy:.4f} on {len(val_set.labels)} images"

    @staticmethod
    def _labelled(d, resize: int | None, pad: int):  # noqa: ANN001, ANN205 - LabelledImages in and out
        """``d`` as a run trained with ``--resize``/``--pad`` sees it (in [-1, 1]), or as it is."""
        from ..data.image_files import fit_images
        from ..data.images import LabelledImages

        if resize is None and not pad:
            return d
        return LabelledImages(fit_images(d.to_unit().float(), pad, resize), d.labels, (-1.0, 1.0), d.name)

    def example(self, folder: Path) -> tuple[str, list[str], list[str]]:
        return ("digits", ["--cond", "label", "--batch-size", "32", "--label-dropout", "0.2"],
                ["--n", "100", "--metrics", "sw2,mmd"])


def _image_table(result: dict) -> str:
    r = result["image"]
    acc = f"{r['class_accuracy']:.4f}" if "class_accuracy" in r else "-"
    floors = (f"{r['fid_floor']:.4f}", f"{r['kid_floor']:.5f}") if "fid_floor" in r else ("-", "-")
    val = "unknown" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}"
    guided = f", guidance {r['guidance']:g}" + interval_words(r.get("guidance_interval"), r["guidance"]) \
        if "guidance" in r else ""
    s = result["sampler"]
    return (f"<p>{result['n']} samples ({s['solver']}, {s['steps']} steps{guided}) "
            f"against {html.escape(result['reference'])}; extractor {html.escape(str(r['extractor']))}, validation "
            f"accuracy {val}, data sha256 {r['data_sha256'][:12]}. The floor is the same metric between two "
            "independent real samples of the same size.</p><table><tr><th>metric</th><th>value</th>"
            f"<th>noise floor</th></tr><tr><td>FID</td><td class=num>{r['fid']:.4f}</td><td class=num>{floors[0]}</td>"
            f"</tr><tr><td>KID</td><td class=num>{r['kid']:.5f}</td><td class=num>{floors[1]}</td></tr>"
            f"<tr><td>class accuracy</td><td class=num>{acc}</td><td></td></tr></table>")


def _columns(n: int) -> int:
    import math

    return math.ceil(math.sqrt(n))


IMAGES = Images()
