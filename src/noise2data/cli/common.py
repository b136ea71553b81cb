"""What several commands share: the parser class, argument types, and option groups declared once."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import UserError, nearest
from ..samplers.budget import solver_steps_for_nfe
from ..samplers.grids import GRIDS

if TYPE_CHECKING:
    from ..modalities import Modality


def _int_at_least(s: str, low: int, what: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
    return v


def positive_int(s: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(s, 1, "a positive integer")


def positive_float(s: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def non_negative_int(s: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(s, 0, "an integer >= 0")


def coupling_name(s: str) -> str:
    """An argparse type: ``auto`` or a coupling :func:`..couplings.get_coupling` knows (``ot-blocks:N`` too)."""
    from ..couplings import get_coupling

    if s != "auto":
        try:
            get_coupling(s)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return s


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at --help; an unknown flag is reported by the
    command it was given to, with the nearest flags it has (``--hiden``: did you mean --hidden?)."""

    def error(self, message: str):  # noqa: ANN201 - never returns
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self.command_parser(list(sys.argv[1:] if args is None else args))
            command.error(f"unrecognized arguments: {' '.join(extras)}{command.suggestion(extras)}")
        return ns

    def command_parser(self, argv: list[str]) -> Parser:
        """The (sub)command parser that ``argv`` names (``train``, ``data qm9``), or this one."""
        parser = self
        for token in argv:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if not subs or token not in subs[0].choices:
                break
            parser = subs[0].choices[token]
        return parser

    def suggestion(self, extras: list[str]) -> str:
        """``" (did you mean --hidden?)"`` for the unknown flags among ``extras`` that resemble one of ours."""
        near = [nearest(flag.split("=")[0], self._option_string_actions) for flag in extras if flag.startswith("--")]
        near = list(dict.fromkeys(m for m in near if m))
        return f" (did you mean {', '.join(near)}?)" if near else ""


def add_run_options(p: argparse.ArgumentParser, *, step: bool = True) -> None:
    """The run folder, and which checkpoint and device to load it on."""
    p.add_argument("run", help="run folder")
    if step:
        p.add_argument("--step", type=int, help="the checkpoint of this step (default: the newest)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")


DEFAULT_SOLVER = "midpoint"  # benchmarks/recipe.py: half Heun's error at equal NFE (README, "Choosing a sampler")
DEFAULT_STEPS = 8


def add_solver_options(p: argparse.ArgumentParser, *, sde: bool = False) -> None:
    """ODE solver, steps or evaluation budget, and time grid (and the SDE alternative), as ``sample`` and
    ``eval`` take them; :func:`solver_steps` turns them into the solver's steps."""
    p.add_argument("--solver", help="euler, midpoint, heun, rk4 (Runge-Kutta), dpm++2m, dpm++3m, unipc2, unipc3 "
                   "(multistep, one evaluation per step; unipc adds a corrector), dopri5 (adaptive), meanflow "
                   "(jumps of a jump model, one evaluation each) "
                   f"(default {DEFAULT_SOLVER}; meanflow for a jump model)")
    p.add_argument("--steps", type=positive_int, help=f"solver steps (default {DEFAULT_STEPS})")
    p.add_argument("--nfe", type=positive_int, help="a budget of network evaluations instead of --steps: the "
                   "solver's steps are chosen to spend exactly this many (midpoint/heun 2 per step, rk4 4); "
                   "guidance evaluates the network twice for each inside its interval (conditional and null), as the "
                   "output says")
    p.add_argument("--grid", default="uniform", choices=list(GRIDS), help="time grid: uniform in t, EDM's rho=7 "
                   "spacing, uniform in log-SNR, or refine (one step to nearly the data, the rest there: for samples "
                   "pinned by a condition, such as clips continued from known frames; far worse for anything else, "
                   "class-conditional digits included) (default uniform)")
    if sde:
        p.add_argument("--sde", action="store_true", help="Euler-Maruyama on the SDE extension instead of an ODE")
        p.add_argument("--diffusion", type=float, default=0.5, help="SDE diffusion coefficient g (default 0.5)")


def sampler_given(args: argparse.Namespace) -> bool:
    """Whether the command line chose the sampler (``--solver``, ``--steps`` or ``--nfe``); call it before
    :func:`solver_steps`, which fills in the solver."""
    return any(getattr(args, k, None) is not None for k in ("solver", "steps", "nfe"))


def solver_steps(args: argparse.Namespace, config: dict | None = None) -> int:
    """The solver's steps from ``--steps`` or ``--nfe`` (not both); an unset ``--solver`` becomes the run's
    default (``config``: its config.json)."""
    if getattr(args, "solver", None) is None:
        from ..run import default_solver

        args.solver = default_solver(config) if config is not None else DEFAULT_SOLVER
    if args.nfe is not None and args.steps is not None:
        raise UserError(f"give --steps or --nfe, not both (got --steps {args.steps} --nfe {args.nfe})")
    if args.nfe is not None:
        if getattr(args, "sde", False):
            raise UserError("--nfe sets an ODE solver's steps; with --sde give --steps (one evaluation each)")
        return solver_steps_for_nfe(args.solver, args.nfe)
    return args.steps if args.steps is not None else DEFAULT_STEPS


def add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")


def add_guidance(p: argparse.ArgumentParser, default: float = 1.0, what: str = "") -> None:
    """``--guidance``; read it with :func:`guidance_given`, which fills in ``default`` where it is not given."""
    p.add_argument("--guidance", type=float, default=None,
                   help=f"classifier-free guidance scale w: 0 unconditional, 1 conditional, > 1 stronger{what} "
                        f"(default {default:g})")
    p.set_defaults(guidance_default=default)


def guidance_given(args: argparse.Namespace) -> bool:
    """Whether the command line gave ``--guidance``; an unset one becomes the parser's default (a modality may
    then pick its measured scale for a task, as for the sampler)."""
    if getattr(args, "guidance_was_given", None) is None:  # asked once: later calls see the filled-in value
        args.guidance_was_given = args.guidance is not None
        if args.guidance is None:
            args.guidance = args.guidance_default
    return args.guidance_was_given


def add_guidance_interval(p: argparse.ArgumentParser) -> None:
    """``--guidance-interval LO,HI``; read it with :func:`guidance_interval`."""
    from ..modalities.registry import all_modalities

    own = ", ".join(f"{m.name} {m.guidance_interval[0]:g},{m.guidance_interval[1]:g}" for m in all_modalities()
                    if tuple(m.guidance_interval) != (0.0, 1.0))
    p.add_argument("--guidance-interval", default=None, help="apply guidance only for t in LO,HI (t = 0 is noise, "
                   "1 data; outside it the null condition is not evaluated, so each step there costs one network "
                   f"evaluation instead of two) (default 0,1{'; ' + own if own else ''})")


def guidance_interval(args: argparse.Namespace, modality: Modality) -> tuple[float, float]:
    """``--guidance-interval`` as ``(lo, hi)`` with 0 <= lo <= hi <= 1 (where not given, the ``modality``'s
    :attr:`~noise2data.modalities.Modality.guidance_interval`), or one line saying what is wrong."""
    from ..guidance import check_interval

    if args.guidance_interval is None:
        return tuple(modality.guidance_interval)
    try:
        lo, hi = (float(v) for v in args.guidance_interval.split(","))
    except ValueError:
        raise UserError(f"--guidance-interval takes LO,HI, e.g. 0.2,0.8; got {args.guidance_interval!r}") from None
    return check_interval((lo, hi))


def add_output_format(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")
    p.add_argument("--out", help=what)
