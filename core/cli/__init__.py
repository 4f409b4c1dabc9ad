"""The ``plugtron`` command line (torch-free until a command needs torch): ``main`` parses and
dispatches; ``plugin_list`` answers ``plugtron plugins list`` and ``plugins show``."""

from plugtron.cli.main import main

__all__ = ["main"]
