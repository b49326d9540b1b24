"""Disclosure control for published tables: small counts are suppressed, and so is whatever would
let a suppressed count be recovered from totals or sibling cells.

Used by the publish step (the serving snapshot), and meant for notebooks and discovery findings:
describe a table with a ``TableSpec``, ``protect`` it, and ``audit`` what you are about to share.
"""

from pipelines.disclosure.audit import Problem, audit
from pipelines.disclosure.policy import DEFAULT_THRESHOLD
from pipelines.disclosure.spec import TOTAL, TableSpec
from pipelines.disclosure.suppress import Protected, protect, withhold_running

__all__ = [
    "DEFAULT_THRESHOLD",
    "TOTAL",
    "Problem",
    "Protected",
    "TableSpec",
    "audit",
    "protect",
    "withhold_running",
]
