"""vpolib: the package behind the vpo-workbook notebooks (one module per stage)."""

from vpolib.config import Config, load_config
from vpolib.runs import Stage, start_stage

__all__ = ["Config", "Stage", "load_config", "start_stage"]
__version__ = "0.1.0"
