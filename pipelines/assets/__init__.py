"""Dagster assets, one module per zone."""

import warnings

import dagster as dg

# Single-run backfills of partition ranges are marked beta; they are how a range of months loads in one run.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
