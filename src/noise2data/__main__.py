"""``python -m noise2data`` runs the CLI (and makes ``torchrun -m noise2data`` possible)."""

from .cli import console_main

console_main()
