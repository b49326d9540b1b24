"""Synthetic municipality generator: realistic monthly deliveries from every unit, with ground truth.

See `synthetic.generate` for the API and `python -m synthetic --help` for the CLI.
"""

from synthetic.generate import GenerationSummary, all_personnummer, generate

__all__ = ["GenerationSummary", "all_personnummer", "generate"]
