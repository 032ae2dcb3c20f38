"""vpolib: the package behind the vpo-workbook notebooks, one module per concept (the README's module map).

Notebooks narrate and show; what they run lives here: data and tags (01), teachers, the judge and refinement
(02), training examples, trainers, checkpoints and generation (03, 05), videos, checklist rewards and
preference pairs (04), evaluation, analysis and the report (06), and a run's folder and headless runner.
"""

from vpolib.config import Config, load_config
from vpolib.run import Stage, start_stage

__all__ = ["Config", "Stage", "load_config", "start_stage"]
__version__ = "0.1.0"
