"""The definitions layer: each zone's Dagster assets, checks, sensors, jobs and schedules, one module per zone.

``units`` (with ``unit_checks``), ``cross_unit``, ``marts``, ``discovery``, ``publish``, ``stewardship``;
``resources`` is the ``Platform`` resource they all use. The logic they run lives in the domain libraries
(``pipelines.ingest``, ``pipelines.quality``, ``pipelines.stewardship``, ...), which import nothing from here
nor from Dagster (``tests/test_layers.py``); ``pipelines/definitions.py`` merges the zones.
"""

import warnings

import dagster as dg

# Single-run backfills of partition ranges are marked beta; they are how a range of months loads in one run.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
