"""What the generator planted, written beside (never inside) the landing area.

`ground_truth/manifest.json` lists the planted patterns (what the data-discovery
unit should find; the modest links of `synthetic.links` with their true odds
ratio and lag), the null pairs and confounded pairs (what it must not find),
trends and budget deviations, and the generation parameters. `ground_truth/defects.json` lists
every defect written into the landing files. Neither holds a personnummer or
any other person identifier: rows are named by unit, month, dataset and line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["association", "precedence", "case_flow", "trend", "deviation", "null", "confounded"]


@dataclass(frozen=True)
class Pattern:
    """One planted structure, or (kind 'null') a pair of services generated independently, or (kind
    'confounded') a pair that co-occurs only through a third unit's services."""

    id: str
    kind: Kind
    units: tuple[str, ...]
    datasets: tuple[str, ...]  # 'unit.dataset'
    description: str
    effect: dict[str, Any] = field(default_factory=dict)  # planted parameters and realised measures


def enhet_deviation(
    id: str, dataset: str, forvaltning: str, enhet: str, description: str, **measures: Any
) -> Pattern:
    """A planted deviation of one enhet in a dataset ('unit.dataset'), which the KPI deviation list
    should find: the enhet and its förvaltning first in the effect, then what was planted and realised."""
    return Pattern(
        id=id,
        kind="deviation",
        units=(dataset.split(".")[0],),
        datasets=(dataset,),
        description=description,
        effect={"forvaltning": forvaltning, "enhet": enhet, **measures},
    )


def realised(value: object, digits: int = 4) -> float | None:
    """A measured effect for the manifest, rounded (None when there was nothing to measure)."""
    return None if value is None else round(float(value), digits)


def write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(content, ensure_ascii=False, indent=2, default=_plain) + "\n", encoding="utf-8"
    )


def manifest(parameters: dict[str, Any], patterns: list[Pattern], background: list[str]) -> dict[str, Any]:
    """The manifest: planted patterns by kind, null pairs, and the parameters of the run."""
    by_kind = {
        "patterns": ("association", "precedence", "case_flow"),
        "trends": ("trend",),
        "deviations": ("deviation",),
        "null_pairs": ("null",),
        "confounded_pairs": ("confounded",),
    }
    content: dict[str, Any] = {"parameters": parameters}
    for key, kinds in by_kind.items():
        content[key] = [asdict(p) for p in patterns if p.kind in kinds]
    content["background"] = background
    return content


def _plain(value: Any) -> Any:
    """numpy scalars and tuples to JSON."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")
