"""NeMo 2.0 -> plugtron: training scripts, NeMo-Run overrides and checkpoints.

Torch-free except ``nemo2_checkpoint``'s loading functions: ``plugtron migrate`` answers fast.
"""

from plugtron.migrate.engine import Migration
from plugtron.migrate.overrides import migrate_overrides
from plugtron.migrate.script import MigrationError, migrate_script

__all__ = ["Migration", "MigrationError", "migrate_overrides", "migrate_script"]
