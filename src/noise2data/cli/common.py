"""What several commands share: the parser class, argument types, and option groups declared once."""

from __future__ import annotations

import argparse


def positive_int(s: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at --help."""

    def error(self, message: str):  # noqa: ANN201 - never returns
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_run_options(p: argparse.ArgumentParser, *, step: bool = True) -> None:
    """The run folder, and which checkpoint and device to load it on."""
    p.add_argument("run", help="run folder")
    if step:
        p.add_argument("--step", type=int, help="the checkpoint of this step (default: the newest)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")


def add_solver_options(p: argparse.ArgumentParser, *, sde: bool = False) -> None:
    """ODE solver, steps and time grid (and the SDE alternative), as ``sample`` and ``eval`` take them."""
    p.add_argument("--solver", default="heun", help="euler, midpoint, heun, rk4, dopri5 (default heun)")
    p.add_argument("--steps", type=positive_int, default=8, help="solver steps (default 8)")
    p.add_argument("--grid", default="uniform", choices=["uniform", "edm"], help="time grid (default uniform)")
    if sde:
        p.add_argument("--sde", action="store_true", help="Euler-Maruyama on the SDE extension instead of an ODE")
        p.add_argument("--diffusion", type=float, default=0.5, help="SDE diffusion coefficient g (default 0.5)")


def add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")


def add_guidance(p: argparse.ArgumentParser, default: float = 1.0, what: str = "") -> None:
    p.add_argument("--guidance", type=float, default=default,
                   help=f"classifier-free guidance scale w: 0 unconditional, 1 conditional, > 1 stronger{what} "
                        f"(default {default:g})")


def add_output_format(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")
    p.add_argument("--out", help=what)
