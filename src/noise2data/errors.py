"""User-facing errors.

Every mistake a user can make (a missing file, a bad name, a wrong shape) raises a subclass of
``ValueError`` whose message says what is wrong and how to fix it, in one line. The CLI prints that
line and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations

from collections.abc import Iterable


class UserError(ValueError):
    """A problem with the user's input, with a message that teaches the fix."""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{module}' package: pip install 'noise2data[{extra}]'"
        )


def nearest(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to a mistyped ``name`` (``hiden`` -> ``hidden``), or None when none is close."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    return close[0] if close else None


def require(module: str, extra: str, purpose: str):  # noqa: ANN201 - returns a module
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra, purpose) from exc
