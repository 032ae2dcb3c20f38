"""Views: figures, tables and HTML made from what the computing modules return.

A view shows a result; it never computes one that a test or a metrics.json relies on. Each module here is named after
the concept it shows (``views.feedback`` shows ``vpolib.feedback``'s pairs). The computing modules never import
``views``; the notebooks call ``views.<concept>.<name>(...)``, so every view module is imported here.
"""

from . import (  # noqa: F401  (the notebooks' views, the HTML report)
    beyond,
    evaluation,
    feedback,
    judge,
    paradigms,
    preference,
    refine,
    report,
    training_log,
)
