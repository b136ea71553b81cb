"""Options that only one kind of data takes (``Modality.sample_options`` / ``eval_options``): declared on
the shared commands from the registry, and refused with one line when given for another kind of run."""

from __future__ import annotations

import argparse

from ..errors import UserError


def add_modality_options(p: argparse.ArgumentParser, command: str) -> None:
    """Add every modality's own options for ``command`` (``sample`` or ``eval``), each in its own group."""
    from ..modalities import all_modalities

    for m in all_modalities():
        options = getattr(m, f"{command}_options")
        if options:
            group = p.add_argument_group(f"{m.name} runs")
            for flags, kwargs in options:
                group.add_argument(*flags, **kwargs)


def _dest(flags: tuple[str, ...], kwargs: dict) -> str:
    return kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")


def modality_extra(args: argparse.Namespace, modality, command: str) -> dict:  # noqa: ANN001
    """The values of ``modality``'s own options; an option of another kind of data that was given is an error."""
    from ..modalities import all_modalities

    extra = {_dest(f, kw): getattr(args, _dest(f, kw), None) for f, kw in getattr(modality, f"{command}_options")}
    for m in all_modalities():
        for flags, kwargs in getattr(m, f"{command}_options"):
            dest = _dest(flags, kwargs)
            if dest not in extra and getattr(args, dest, None) not in (None, False):
                raise UserError(f"{flags[0]} applies to {m.name} runs; this is a {modality.name} run")
    return extra
