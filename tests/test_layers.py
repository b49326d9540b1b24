"""The layer rule: domain libraries never import Dagster nor the definitions that wire them into Dagster.

Knutpunkt has three layers, each importing only from those below it:

1. **domain libraries**: ``warehouse``, ``synthetic`` and the ``pipelines`` packages that know the
   municipality's data (units, border, ingest, quality rules, stewardship, disclosure, discovery, onboarding,
   serving, settings). Plain Python, DuckDB, polars, GX; no ``dagster`` or ``dagster_dbt``.
2. **definitions** (``pipelines.defs``): the Dagster assets, checks, sensors, jobs, schedules and
   resources, one module per zone, and ``pipelines/definitions.py``, which merges them;
   ``pipelines/runs.py`` (run bookkeeping on the Dagster instance).
3. **entry points**: ``pipelines/cli.py`` and the benches, tests and notebooks.

The graph is built from the source files with ``ast`` (every ``import``, also those inside a
function), so a lazy import is caught as well as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from pipelines.settings import REPO_ROOT

PACKAGES = ("pipelines", "warehouse", "synthetic")
DOMAIN = (
    "pipelines.units",
    "pipelines.border",
    "pipelines.ingest",
    "pipelines.quality",
    "pipelines.stewardship",
    "pipelines.disclosure",
    "pipelines.discovery",
    "pipelines.onboarding",
    "pipelines.serving",
    "pipelines.settings",
    "pipelines.progress",
    "warehouse",
    "synthetic",
)
FORBIDDEN = (
    "dagster",
    "dagster_dbt",
    "pipelines.defs",
    "pipelines.definitions",
    "pipelines.runs",
    "pipelines.cli",
)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the packages under ``root``, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """What a module imports, as dotted names (``from a import b`` is ``a.b`` when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def within(name: str, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


def violations(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Each (domain module, forbidden layer) it imports."""
    return {
        (module, layer)
        for module, targets in graph.items()
        if within(module, DOMAIN)
        for target in targets
        if (layer := within(target, FORBIDDEN))
    }


def test_domain_libraries_import_no_dagster_nor_definitions():
    found = sorted(violations(import_graph(REPO_ROOT)))
    assert not found, "a domain module imports Dagster or the definitions layer:\n" + "\n".join(
        f"  {m} -> {t}" for m, t in found
    )


def test_every_domain_package_is_in_the_graph():
    graph = import_graph(REPO_ROOT)
    assert all(any(within(m, (d,)) for m in graph) for d in DOMAIN)
    assert "pipelines.definitions" in graph


def test_the_check_catches_a_back_edge(tmp_path: Path):
    """A domain module importing a definitions module or Dagster, at the top or inside a function."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for sub in ("defs", "stewardship", "ingest"):
        (tmp_path / "pipelines" / sub).mkdir()
        (tmp_path / "pipelines" / sub / "__init__.py").write_text("")
    (tmp_path / "pipelines/defs/marts.py").write_text("X = 1\n")
    (tmp_path / "pipelines/stewardship/report.py").write_text("from ..defs import marts\n")
    (tmp_path / "pipelines/ingest/delivery.py").write_text("def f():\n    from dagster import op\n")
    (tmp_path / "warehouse/layout.py").write_text("import pipelines.definitions\n")
    (tmp_path / "pipelines/defs/units.py").write_text(
        "import dagster\nfrom pipelines.ingest import delivery\n"
    )
    assert violations(import_graph(tmp_path)) == {
        ("pipelines.stewardship.report", "pipelines.defs"),
        ("pipelines.ingest.delivery", "dagster"),
        ("warehouse.layout", "pipelines.definitions"),
    }


def test_importing_the_domain_libraries_loads_no_dagster():
    """The same rule at run time, through every transitive import: load each domain module in a fresh
    interpreter and see that neither Dagster nor a definition was loaded."""
    names = sorted(m for m in import_graph(REPO_ROOT) if within(m, DOMAIN))
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted({{f for m in sys.modules for f in {FORBIDDEN!r} if m == f or m.startswith(f + '.')}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", f"loaded by a domain library: {out.stdout}"
