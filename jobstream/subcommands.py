"""`jobstream` subcommands that live beside the code they run (the local stack, the benchmark), found through
the `jobstream.commands` entry points: the shared package never imports the tools above it.

Its own module, not cli.py: under `python -m jobstream.cli` that file is `__main__`, and an entry point's
`Subcommand` must be the same class as the one checked here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

GROUP = "jobstream.commands"


@dataclass(frozen=True)
class Subcommand:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def subcommands() -> dict[str, Subcommand]:
    found = {}
    for entry in entry_points(group=GROUP):
        command = entry.load()
        if not isinstance(command, Subcommand):
            raise TypeError(f"entry point {entry.value} is not a jobstream.subcommands.Subcommand")
        found[entry.name] = command
    return found
