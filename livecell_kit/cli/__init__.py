"""The ``livecell-kit`` command: the notebooks' pipeline from a shell.

* :mod:`~livecell_kit.cli.launch` — the console script's entry point: only the standard library
  at first, so a Ctrl-C while the commands load is one line;
* :mod:`~livecell_kit.cli.commands` — the argument parser and one function per command;
* :mod:`~livecell_kit.cli.errors` — errors as a few lines and an exit status (0, 1, 2, 130).

``cli.main(["sample", "--out", DIR])`` runs one command, as the console script does.
"""
from livecell_kit.cli.launch import main

__all__ = ["main"]
