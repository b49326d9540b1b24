"""Stewardship: what each unit shares into the cross-unit zone, under whose approval, for how long.

Under OSL each committee is its own authority, so nothing leaves a unit zone
without a dataset contract (``pipelines/units/contracts/``) and a steward's
approval bound to that contract's version. Approvals, revocations, publishes,
withdrawals and retention deletions are entries of one hash-chained audit log
under ``$KNUTPUNKT_HOME/stewardship``; the current approval state is read from it.
"""
