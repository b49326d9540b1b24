"""Onboarding: a unit's sample export in, a draft dataset contract out, and what a load would do with it.

``infer`` reads the sample the way the border will and proposes the ``unit`` and ``delivery`` blocks with a
reason per decision; ``draft`` writes the contract YAML with the governance marked TODO for a steward;
``dry_run`` loads the sample under the draft with the real border on a throwaway home. ``knutpunkt
onboard`` (``pipelines/cli.py``) only wires them together.
"""

from pipelines.onboarding.draft import draft_yaml
from pipelines.onboarding.dry_run import DryRun, dry_run
from pipelines.onboarding.infer import Proposal, propose

__all__ = ["DryRun", "Proposal", "draft_yaml", "dry_run", "propose"]
