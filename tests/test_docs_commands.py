"""Every ``noise2data`` command in the README's and DESIGN.md's code blocks is one the CLI accepts.

The commands are parsed by the real parser (nothing runs), so a renamed or removed flag, a bad choice
or a missing required option in the documentation fails here instead of on a user's first try.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from noise2data.cli import build_parser
from noise2data.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "DESIGN.md")


def documented_commands(text: str) -> list[tuple[int, list[str]]]:
    """``(line, argv after 'noise2data')`` for each command in the fenced code blocks of ``text``.

    Continuation lines (a trailing backslash) are joined and ``# comments`` dropped; a command may
    follow ``python -m`` or ``torchrun ... -m``.
    """
    found, in_code, lines = [], False, text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif in_code and re.search(r"(^|\s)noise2data\s", line):
            start = i + 1
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            tokens = shlex.split(re.sub(r"(^|\s)#.*$", "", line))
            if "noise2data" in tokens:
                k = tokens.index("noise2data")
                if k == 0 or tokens[k - 1] == "-m":
                    found.append((start, tokens[k + 1:]))
        i += 1
    return found


def subcommand_flags(argv: list[str]) -> set[str]:
    """The option strings of the (sub)command ``argv`` starts with (``data`` has its own subcommands)."""
    parser = build_parser()
    for token in argv:
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs or token not in subs[0].choices:
            break
        parser = subs[0].choices[token]
    return set(parser._option_string_actions)


def parse_error(argv: list[str]) -> str | None:
    """None if the CLI's parser accepts ``argv``, else why not. An excerpt (``train ... --compile``) is only
    checked for flags its command does not have."""
    if "..." in argv:
        flags = subcommand_flags(argv)
        unknown = [a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0] not in flags]
        return f"no such flag {', '.join(unknown)}" if unknown else None
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        return None if exc.code == 0 else f"exit {exc.code}"
    except UserError as exc:
        return str(exc)
    return None


def test_the_check_finds_commands_and_catches_a_bad_flag():
    text = "prose noise2data train --bogus\n```\nnoise2data train --data moons --out r  # ok\n" \
           "torchrun --nproc-per-node 2 -m noise2data sample r \\\n  --n 4 --no-such-flag\n" \
           "noise2data train ... --compile\nnoise2data train ... --compiled\n```\n"
    cmds = documented_commands(text)
    assert [line for line, _ in cmds] == [3, 4, 6, 7]  # prose outside code blocks is not a command
    assert parse_error(cmds[0][1]) is None
    assert parse_error(cmds[1][1]) is not None  # the continuation line was joined
    assert parse_error(cmds[2][1]) is None and parse_error(cmds[3][1]) == "no such flag --compiled"


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_parses(doc, capsys):
    cmds = documented_commands((ROOT / doc).read_text())
    if doc == "README.md":
        assert len(cmds) >= 40  # the README documents every command; an empty find would pass vacuously
    bad = [f"{doc}:{line}: noise2data {' '.join(argv)} ({why})" for line, argv in cmds
           if (why := parse_error(argv)) is not None]
    capsys.readouterr()  # argparse's own messages
    assert not bad, "\n".join(bad)
