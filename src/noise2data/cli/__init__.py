"""The ``noise2data`` command line: thin; it builds requests and hands them to the run's modality.

One module per command group: :mod:`.train` (train, plot-path; its options and ``--config``
files in :mod:`.train_options`), :mod:`.fewstep` (distill, reflow), :mod:`.sample`, :mod:`.evaluate`
(eval, nll, report, features), :mod:`.info` (what a run holds) and :mod:`.data` (building datasets);
:mod:`.common` declares the options several commands share. User mistakes end in one line on
stderr, ``noise2data: error: ...``, and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import MissingExtraError, UserError
from .common import Parser
from .data import add_data_command, build_data
from .evaluate import EVALUATION_COMMANDS, add_evaluation_commands
from .fewstep import FEWSTEP_COMMANDS, add_fewstep_commands
from .info import INFO_COMMANDS, add_info_command
from .sample import add_sample_command, sample_command
from .train import add_train_command, plot_path_command, train_command
from .train_options import expand_config

COMMANDS = {"train": train_command, "sample": sample_command, "plot-path": plot_path_command, "data": build_data,
            **EVALUATION_COMMANDS, **FEWSTEP_COMMANDS, **INFO_COMMANDS}


def build_parser() -> Parser:
    p = Parser(prog="noise2data", description="Flow matching and diffusion on any tensor data.")
    p.add_argument("--version", action="version", version=f"noise2data {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    add_train_command(sub)
    add_fewstep_commands(sub)
    add_sample_command(sub)
    add_evaluation_commands(sub)
    add_info_command(sub)
    add_data_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 for a user error)."""
    from ..cpu_memory import keep_freed_memory

    keep_freed_memory()
    try:
        args = build_parser().parse_args(expand_config(sys.argv[1:] if argv is None else argv))
        return COMMANDS[args.command](args)
    except (UserError, MissingExtraError) as exc:
        print(f"noise2data: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("noise2data: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """Entry point of the ``noise2data`` console script."""
    sys.exit(main())


__all__ = ["COMMANDS", "build_parser", "console_main", "main"]
