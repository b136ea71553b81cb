"""``python -m noise2data.cli`` runs the CLI, as ``python -m noise2data`` does."""

from . import console_main

console_main()
