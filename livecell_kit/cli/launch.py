"""The ``livecell-kit`` console script: a Ctrl-C is one line from the first instant.

Importing the CLI's stages takes about a second; a Ctrl-C then would end in a traceback
from deep inside some import, before :func:`livecell_kit.cli.commands.main` can catch anything. So
the console script starts here, with only the standard library loaded, and imports the
commands inside :func:`main`.
"""
from __future__ import annotations

import sys

#: Exit status after Ctrl-C, as ``livecell_kit.cli.errors.EXIT_INTERRUPTED`` (128 + SIGINT).
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """Import the CLI and run it; a Ctrl-C during the import exits 130 with one line."""
    try:
        from livecell_kit.cli import commands  # here, not at the top: see the module docstring
    except KeyboardInterrupt:
        print("\nlivecell-kit: interrupted while starting; nothing was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    return commands.main(argv)
