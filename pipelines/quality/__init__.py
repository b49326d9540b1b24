"""Quality gates: each delivery partition validated with Great Expectations, run as Dagster asset checks.

- ``contract``: the expectation suite of a unit, derived from its delivery spec
  plus the delivery-level expectations; committed as JSON beside the unit.
- ``frame``: what is validated: a delivery's stored rows and quarantine, from the unit zone.
- ``validate``: runs a suite with GX 1.x on pandas (the DuckDB SQL datasource is broken).
- ``freshness``: monthly cadence, judged from when a delivery's files arrived.
- ``checks``: the Dagster asset checks per unit partition and their results.
- ``docs``: GX Data Docs for stewards, one site per unit under ``$KNUTPUNKT_HOME/quality``.
- ``gate``: which units a failed blocking check holds back, for downstream started in another run.
"""
