"""Video: ``video:FILE`` (.npy/.npz clips, e.g. from ``noise2data data moving-mnist``) or ``video:FOLDER``
of GIFs.

Loader: :func:`.data.load_video`, clips ``(N, T, C, H, W)`` in [-1, 1] with their source's units.
Prior: N(0, I). Condition: the known frames and their mask (:mod:`.known`), drawn per batch in
training; the loss counts only unknown frames. Model: ``video-unet``. Samples: animated GIF grids,
PNG strips (frames across, clips down), .npy/.npz in the source's units and layout; clips can be
continued from context frames, filled in between given frames, and made longer than T. Metrics:
PSNR/SSIM of predicted and interpolated frames beside copying the known frame and moving it along
the known frames' motion (two baselines that learn nothing), digit centre error and speeds, digit
identity, and a Frechet distance on 3-D CNN features, each beside its floor. Report: clips beside real ones.
"""

from __future__ import annotations

import dataclasses
import html
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..guidance import interval_words
from ..modalities.base import EvalRequest, Modality, ReportRequest, SampleRequest, Section, TrainingSet
from ..modalities.tensors import save_array

PREFIX = "video:"
REFUSED = {"labels": "--labels", "cond_file": "--cond-file", "resize": "--resize", "pad": "--pad",
           "hflip": "--hflip", "stream": "--stream", "dequantize": "--dequantize", "eval_every": "--eval-every"}


class Video(Modality):
    name = "video"
    data_help = "video:FILE (.npy/.npz clips (N, T, H, W[, C]), e.g. from 'noise2data data moving-mnist') or " \
                "video:FOLDER of GIFs"
    models = ("video-unet",)
    # benchmarks/video.py: the tiny video U-Net on 32x32 Moving MNIST, 16 frames, for 30 CPU minutes. The
    # network predicts the clean clip (objective data): predicting velocity, it must output the noise of
    # every pixel through the 4x4 stem, and after 550 steps its predicted frames were noise (SSIM 0.015
    # against 0.43)
    defaults = {"model": "video-unet", "preset": "tiny", "batch_size": 16, "lr": 1e-3, "warmup_steps": 200,
                "steps": 3000, "checkpoint_every": 500, "standardize": "none", "label_dropout": 0.0,
                "objective": "data"}
    own_train_options = ("bounce",)
    sample_suffixes = (".gif", ".png", ".npy", ".npz")
    default_metrics = ("psnr", "ssim", "centre", "speed", "identity", "fvd")
    eval_n = 200
    sample_options = (
        (("--context",), {"help": "video: clips whose frames are given (.npy/.npz/GIF folder, like the training "
                                  "data); the first --n clips are used, sampled with Euler in 2 steps unless "
                                  "--solver, --steps or --nfe says otherwise"}),
        (("--context-frames",), {"type": int, "help": "video: continue the context clips from their first K frames"}),
        (("--known",), {"help": "video: the frames given, i,j,... (e.g. 0,15: fill in between)"}),
        (("--frames",), {"type": int, "help": "video: clip length (default the run's); longer clips are made block "
                                              "by block"}),
        (("--lead-frames",), {"type": int, "help": "video: clips from nothing are made in two stages: the first K "
                                                   "frames of clips drawn whole, the rest continued from them as with "
                                                   "--context-frames K (default a quarter of the run's frames, "
                                                   "e.g. 4 of 16; 0: draw whole clips)"}),
    )
    eval_options = (
        (("--classifier",), {"help": "video: the identity judge, a digit classifier from 'noise2data features --data "
                                     "video:TRAIN.npz' (the clips' own digits; or --data mnist:DIR) whose classes "
                                     "judge each frame's digit"}),
        (("--best-of",), {"type": int, "default": None, "help": "video: samples per context clip for best-of-k "
                                                                "PSNR/SSIM (default 4)"}),
        (("--context-frames",), {"type": int, "default": None, "help": "video: frames given for prediction (default "
                                                                       "a quarter of the clip, e.g. 4 of 16)"}),
        (("--known-sampler",), {"default": None, "help": "video: SOLVER:STEPS[:GRID] for prediction and "
                                                        "interpolation, e.g. euler:4 (grid uniform unless given; "
                                                        "default euler:2:refine, or --solver, --steps and --grid "
                                                        "where --solver, --steps or --nfe is given)"}),
        (("--lead-frames",), {"type": int, "default": None, "help": "video: score clips made from nothing both drawn "
                                                                    "whole and in two stages from their first K "
                                                                    "frames (as sample; default a quarter of the "
                                                                    "run's frames; 0: drawn whole only)"}),
    )

    def matches(self, spec: str) -> bool:
        return spec.startswith(PREFIX)

    def model_classes(self) -> dict[str, tuple[type, type]]:
        from .model import VideoUNet, VideoUNetConfig

        return {"video-unet": (VideoUNet, VideoUNetConfig)}

    def load(self, opts: dict, resumed: dict | None = None) -> TrainingSet:
        from ..couplings import is_ot
        from ..data import Standardizer
        from .data import load_video
        from .known import training_condition, unknown_weight
        from .model import VideoUNetConfig
        from .motion import content_speed, content_walls

        self.check_model(opts["model"])
        given = [flag for key, flag in REFUSED.items() if opts.get(key)]
        if opts.get("cond") not in (None, "none") or is_ot(opts.get("coupling") or "auto") or \
                opts["standardize"] != "none":
            given.append("--cond/--coupling ot/--standardize")
        if given:
            raise UserError(f"{', '.join(given)} do not apply to video: clips are used in [-1, 1], and their "
                            "condition is the known frames")
        data = load_video(opts["data"][len(PREFIX):])
        shape = tuple(data.clips.shape[1:])
        # the gate blends a clean frame into the output: it applies to a clean-clip prediction only
        gate = {} if opts.get("objective", "data") == "data" else {"motion_gate": False, "motion_warp": False}
        bounce = {} if opts.get("bounce") is None else {"bounce": bool(opts["bounce"])}
        mcfg = VideoUNetConfig.preset(opts["preset"], shape, time_embedding=opts["time_embedding"], **gate, **bounce)
        if mcfg.bounce and mcfg.walls is None:  # where content turns back, measured once on the training clips
            walls = content_walls(data.clips)  # None: clips without an object that bounces (the config says so)
            mcfg = dataclasses.replace(mcfg, walls=walls, bounce=walls is not None)
        if mcfg.steady_speed and mcfg.speed is None:  # the one speed of the training clips' content, if they share one
            speed = content_speed(data.clips)
            mcfg = dataclasses.replace(mcfg, speed=speed, steady_speed=speed is not None)
        return TrainingSet(data=data.clips, standardizer=Standardizer.identity(shape), model_config=mcfg.to_dict(),
                           batch_condition=training_condition, loss_weight=unknown_weight,
                           data_config={"units": data.units.to_dict()})

    def units(self, run):  # noqa: ANN001, ANN201 - an ImageUnits
        from ..data.image_units import ImageUnits

        return ImageUnits(**run.config["data"]["units"])

    # ---- sampling ----------------------------------------------------------------------------------
    def context(self, run, path: str, n: int) -> Tensor:  # noqa: ANN001
        """The first ``n`` clips of a context file, ``(n, T, C, H, W)`` in [-1, 1], padded/cut to the run's T."""
        from .data import load_video

        clips = load_video(path[len(PREFIX):] if path.startswith(PREFIX) else path).clips
        t_model, shape = int(run.data_shape[0]), tuple(run.data_shape[1:])
        if tuple(clips.shape[2:]) != shape:
            raise UserError(f"the context clips have frames of shape {tuple(clips.shape[2:])} (C, H, W); this run "
                            f"makes {shape}: give clips like its training data")
        if len(clips) < n:
            raise UserError(f"the context file holds {len(clips)} clips, fewer than --n {n}")
        clips = clips[:n, :t_model]
        if clips.shape[1] < t_model:
            clips = torch.cat([clips, clips.new_zeros(n, t_model - clips.shape[1], *shape)], 1)
        return clips

    def sample(self, run, request: SampleRequest) -> str:  # noqa: ANN001
        from .known import known_mask, parse_known
        from .sampling import KNOWN_SAMPLER, generate_clips, known_guidance, lead_frames, sample_clips, sampler_words

        if request.out.suffix not in self.sample_suffixes:
            raise UserError(f"a video run writes {', '.join(self.sample_suffixes)}; got --out {request.out}")
        if request.label is not None or request.condition is not None or request.grid_per_class or request.sde:
            raise UserError("video runs sample with an ODE solver from known frames (--context), not labels, "
                            "conditions, grids or --sde")
        extra, t_model = request.extra, int(run.data_shape[0])
        known = parse_known(extra["known"], t_model) if extra.get("known") else None
        if (known or extra.get("context_frames") is not None) and not extra.get("context"):
            raise UserError("--context-frames and --known pick frames of --context clips: give --context FILE")
        if extra.get("context") and not known and extra.get("context_frames") is None:
            raise UserError("--context needs --context-frames K (continue) or --known i,j (fill in between)")
        lead = extra.get("lead_frames")
        if lead is not None and extra.get("context"):
            raise UserError("--lead-frames makes clips from nothing; --context continues given clips: give one")
        lead = 0 if extra.get("context") else lead_frames(lead, t_model)
        frames = extra.get("frames")
        if frames is not None and frames < 1:
            raise UserError(f"--frames must be >= 1, got {frames}")
        mask = known_mask(request.n, t_model, context_frames=extra.get("context_frames"), known=known)
        context = self.context(run, extra["context"], request.n) if extra.get("context") else None
        solver, steps, grid = request.solver, request.steps, request.grid
        known_sampler = (solver, steps, grid) if request.sampler_given else KNOWN_SAMPLER
        if context is not None:
            solver, steps, grid = known_sampler
        guidance = known_guidance(request)  # over known frames only
        common = {"frames": frames, "solver": solver, "steps": steps, "grid": grid, "seed": request.seed,
                  "guidance": guidance, "interval": request.guidance_interval,
                  "batch_size": request.batch_size,
                  "trajectory": bool(request.trajectory_plot or request.trajectory_gif)}
        t0 = time.perf_counter()
        if context is None:  # from nothing: in two stages unless --lead-frames 0
            res = generate_clips(run, request.n, lead, known_sampler=known_sampler, **common)
        else:
            res = sample_clips(run, request.n, context=context, mask=mask, **common)
        secs = time.perf_counter() - t0
        if not torch.isfinite(res.x).all():
            raise UserError(f"sampling produced NaN/Inf ({solver}, {steps} steps): try more --steps; "
                            "nothing was written")
        request.out.parent.mkdir(parents=True, exist_ok=True)
        shape = self.write(run, res.x, request.out, request.raw)
        if grid != "uniform":
            solver = f"{solver} on the {grid} grid"
        if lead:
            solver = f"{solver}, then {sampler_words(known_sampler)} after the first {lead} frames"
        guided = f"; guidance {guidance:g} over the known frames{interval_words(request.guidance_interval)}" \
            if (lead or context is not None) and guidance != 1 else ""
        lines = [f"wrote {request.out} {shape} ({solver}, {res.cost_words()}, step {run.step}, "
                 f"{secs / request.n:.2f} s per clip{guided})"]
        lines += self.plots(run, res, request)
        return "\n".join(lines)

    def write(self, run, x: Tensor, out: Path, raw: bool = False) -> tuple:  # noqa: ANN001
        """Clips ``(N, F, C, H, W)`` in [-1, 1] as a GIF grid, a PNG strip or an array in the source's units."""
        from ..plotting import plot_image_grid, save_trajectory_gif
        from .data import clips_to_user

        if out.suffix == ".gif":  # frames over time, clips side by side
            save_trajectory_gif(x.transpose(0, 1), out, frames=x.shape[1], duration_ms=150)
            return tuple(x.shape)
        if out.suffix == ".png":  # frames across, clips down
            plot_image_grid(x.flatten(0, 1), out, x.shape[1], scale=3)
            return tuple(x.shape)
        arr = x.numpy() if raw else clips_to_user(x, self.units(run))
        save_array(out, arr)
        return tuple(arr.shape)

    def plots(self, run, res, request: SampleRequest) -> list[str]:  # noqa: ANN001
        from ..plotting import plot_image_panels, plot_image_trajectory, save_trajectory_gif

        written = []
        if request.plot:
            real = self.real_clips(run, min(8, len(res.x)))
            panels = [("real clips", real.flatten(0, 1))] if real is not None else []
            panels.append(("samples", res.x[:8, :real.shape[1] if real is not None else None].flatten(0, 1)))
            plot_image_panels(panels, request.plot, min(res.x.shape[1], run.data_shape[0]))
            written.append(f"wrote {request.plot}")
        if request.trajectory_plot and res.trajectory is not None:  # the first clip's frames, noise to data
            plot_image_trajectory(res.trajectory[:, 0], res.times, request.trajectory_plot)
            written.append(f"wrote {request.trajectory_plot}")
        if request.trajectory_gif and res.trajectory is not None:
            save_trajectory_gif(res.trajectory[:, 0], request.trajectory_gif)
            written.append(f"wrote {request.trajectory_gif}")
        return written

    def real_clips(self, run, n: int, spec: str | None = None) -> Tensor | None:  # noqa: ANN001
        from .data import load_video

        try:
            return load_video((spec or run.config["data"]["spec"])[len(PREFIX):]).clips[:n]
        except UserError:
            return None

    def read_samples(self, path: str | Path):  # noqa: ANN201
        path = Path(path)
        if path.suffix == ".gif":
            from .data import read_gif

            return read_gif(path)
        if path.suffix == ".png":
            from ..data.image_files import decode

            return decode(path, 3).numpy()
        from ..data.arrays import read_array

        return np.asarray(read_array(path, "samples" if path.suffix == ".npz" else None))

    # ---- evaluation and report --------------------------------------------------------------------
    def evaluate(self, run, request: EvalRequest) -> dict:  # noqa: ANN001
        from .evaluation import evaluate_video

        return evaluate_video(run, request)

    def format_eval(self, result: dict) -> str:
        from .evaluation import format_video_eval

        return format_video_eval(result)

    def report(self, run, request: ReportRequest) -> list[Section]:  # noqa: ANN001
        from ..plotting import plot_image_panels
        from ..report import png_data_uri
        from .known import known_mask
        from .sampling import (
            KNOWN_SAMPLER,
            default_lead_frames,
            generate_clips,
            known_guidance,
            sample_clips,
            sampler_words,
        )

        t_model = int(run.data_shape[0])
        real = self.real_clips(run, 6)
        solver = run.default_solver  # as `sample` without flags: the run's solver for clips made from nothing,
        lead = default_lead_frames(t_model)  # KNOWN_SAMPLER where frames are given, and after the lead frames
        guidance = known_guidance(request)  # over the known frames
        interval = request.guidance_interval
        gen = generate_clips(run, 6, lead, solver=solver, steps=8, seed=request.seed, guidance=guidance,
                             interval=interval).x
        panels = ([("real clips", real.flatten(0, 1))] if real is not None else []) + [("generated", gen.flatten(0, 1))]
        uri = png_data_uri(lambda f: plot_image_panels(panels, f, t_model))
        known = f"{sampler_words(KNOWN_SAMPLER)}, guidance {guidance:g} over the known frames{interval_words(interval)}"
        after = f"; {known} after the first {lead} frames" if lead else ""
        sections = [Section("Generated clips beside real ones",
                            f"<p class=note>Frames run left to right, one clip per row ({solver}, 8 steps{after}).</p>"
                            f"<img alt=\"generated clips\" src=\"{uri}\">")]
        if real is not None:
            k = max(1, t_model // 4)
            pred = sample_clips(run, len(real), context=real, mask=known_mask(len(real), t_model, context_frames=k),
                                solver=KNOWN_SAMPLER[0], steps=KNOWN_SAMPLER[1], grid=KNOWN_SAMPLER[2],
                                seed=request.seed, guidance=guidance, interval=interval).x
            both = [("real clips", real.flatten(0, 1)), (f"continued from the first {k} frames", pred.flatten(0, 1))]
            uri = png_data_uri(lambda f: plot_image_panels(both, f, t_model))
            sections.append(Section("Prediction", f"<p class=note>{known}.</p>"
                                    f"<img alt=\"prediction\" src=\"{uri}\">"))
        eval_file = Path(run.run_dir) / "eval.json"
        if eval_file.is_file():
            import json

            stored = json.loads(eval_file.read_text())
            if stored.get("step") == run.step:
                sections.insert(0, Section("Metrics (from eval.json)",
                                           f"<pre>{html.escape(self.format_eval(stored))}</pre>"))
        return sections

    def train_features(self, spec: str, *, out: str, epochs: int | None, seed: int, clips: bool,
                       resize: int | None = None, pad: int = 0) -> str:
        """``clips``: a 3-D CNN that classifies each clip's (first) digit (the video Frechet distance's features);
        else the identity judge: a classifier of the clips' digits, cut out around their stored centres at the
        clips' own scale. Every fifth clip validates."""
        from ..data.images import LabelledImages
        from ..metrics.features import save_extractor, train_feature_net
        from .data import load_video
        from .metrics import digit_crop_set

        if resize is not None or pad:
            raise UserError("--resize and --pad shape images; clips are scored at the size they were made")

        data = load_video(spec[len(PREFIX):])
        if data.labels is None or (not clips and data.centers is None):
            need = "labels" if clips else "labels and digit centres"
            raise UserError(f"{spec} has no {need}: the video judges learn to tell the clips' digits apart "
                            "(make clips with 'noise2data data moving-mnist', which stores them)")
        if clips:
            x, y = data.clips.transpose(1, 2).contiguous(), data.labels[:, 0]  # (N, C, T, H, W) in [-1, 1]
            val = torch.arange(len(y)) % 5 == 0
            net, kind, unit = {"batch_size": 32, "width": 16}, "3-D CNN", "clips"
        else:
            x, y, owner = digit_crop_set((data.clips + 1) / 2, data.labels, data.centers, seed=seed)
            x, val = x * 2 - 1, owner % 5 == 0  # (M, 1, s, s) in [-1, 1]
            side = x.shape[-1]
            net, kind = {}, f"digit classifier on {side}x{side} crops (the clips' scale; eval --classifier)"
            unit = "digits of held-out clips"
        train_set = LabelledImages(x[~val], y[~val], (-1.0, 1.0), f"{Path(spec).name}-train")
        val_set = LabelledImages(x[val], y[val], (-1.0, 1.0), f"{Path(spec).name}-val")
        ext = train_feature_net(train_set, val_set, epochs=epochs or 3, seed=seed, **net)
        save_extractor(ext, out)
        return f"wrote {out}: {kind}, validation accuracy {ext.val_accuracy:.4f} on {len(val_set.labels)} {unit}"

    def example(self, folder: Path) -> tuple[str, list[str], list[str]]:
        from .toy import moving_blobs

        clips, _ = moving_blobs(24, frames=8, size=16, seed=0)
        path = folder / "blobs.npz"
        np.savez(path, videos=(clips[:, :, 0] * 255).round().to(torch.uint8).numpy())
        return f"{PREFIX}{path}", ["--batch-size", "4"], ["--n", "4", "--best-of", "1"]


VIDEO = Video()
