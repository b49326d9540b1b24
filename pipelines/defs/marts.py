"""The SQL models in ``models/`` as Dagster assets: one asset per dbt model and seed, dbt tests as checks.

dbt-duckdb builds staging views and marts in ``warehouse/marts.duckdb`` and the person-level
citizen-quarter panel in the cross-unit zone (``discovery.citizen_quarter``); see
``models/profiles.yml``. Sources carry the Dagster keys of the unit and cross-unit assets, so the
models sit downstream of them in one graph.

The dbt manifest is an artifact, never committed: it is built with ``dbt parse`` when it is
missing or older than any of the project's files, the first time the assets are asked for
(:func:`dbt_models`, from ``pipelines.definitions``'s lazy ``defs``), never when a module is imported.
That is ``prepare_if_dev``'s job too, but it re-parses on every code load under ``dagster dev``;
checking timestamps keeps a reload instant when nothing changed and still picks up an edited model.

dbt finds the warehouse through ``models/profiles.yml``: the platform home is handed to it as the
``knutpunkt_home`` var of each invocation (``KNUTPUNKT_HOME`` is only its fallback), so no process
environment is written. dagster-dbt turns dbt's anonymous usage statistics off in every invocation.
"""

import fcntl
import hashlib
import importlib.metadata
import json
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging.version import Version

from pipelines.defs.resources import Platform
from pipelines.settings import REPO_ROOT
from warehouse.layout import memory_limit

DBT_DIR = REPO_ROOT / "models"
DBT_PROJECT = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
# The dbt step writes marts.duckdb and the cross-unit zone (the panel): it queues with the
# cross-unit writers so two writers of that file never run at once.
DBT_POOL = "duckdb_cross_unit"
PARTIAL_PARSE = "partial_parse.msgpack"  # dbt's parsed project, kept per home and checkout between runs
_SOURCES = ("dbt_project.yml", "profiles.yml", "sql", "seeds", "macros", "tests")


def ensure_manifest(project: DbtProject = DBT_PROJECT) -> Path:
    """Parse the dbt project if its manifest is missing or stale; one process at a time."""
    manifest = Path(project.manifest_path)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not manifest.exists() or manifest.stat().st_mtime < _newest_source(Path(project.project_dir)):
            DbtCli(project_dir=project, dbt_executable=str(DBT_EXECUTABLE)).cli(
                ["parse", "--quiet"], target_path=manifest.parent
            ).wait()
    return manifest


def _newest_source(project_dir: Path) -> float:
    newest = 0.0
    for name in _SOURCES:
        path = project_dir / name
        files = [path] if path.is_file() else path.rglob("*") if path.exists() else []
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file())])
    return newest


class KnutpunktTranslator(DagsterDbtTranslator):
    """Keys by zone: staging/<model>, marts/<model> (schema main), reference/<seed>, cross_unit/discovery/<model>."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        name, schema = dbt_resource_props["name"], dbt_resource_props.get("schema")
        if schema == "discovery":
            return dg.AssetKey(["cross_unit", "discovery", name])
        return dg.AssetKey(["marts" if schema in (None, "main") else schema, name])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        schema = dbt_resource_props.get("schema")
        return {"staging": "staging", "discovery": "discovery"}.get(schema, "marts")


@cache
def dbt_models() -> dg.AssetsDefinition:
    """One asset per dbt model and seed, built once per process from a fresh manifest."""

    @dbt_assets(
        manifest=ensure_manifest(),
        project=DBT_PROJECT,
        dagster_dbt_translator=KnutpunktTranslator(),
        pool=DBT_POOL,
        name="dbt_models",
    )
    def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, platform: Platform) -> Iterator:
        """``dbt build``: seeds, staging views, marts and the panel, each followed by its tests."""
        # profiles.yml's warehouse paths and DuckDB's buffer limit
        home = json.dumps({"knutpunkt_home": str(platform.paths.home), "memory_limit": memory_limit()})
        target = platform.paths.dbt / context.run.run_id
        _reuse_parse(platform.paths.dbt, target, DBT_DIR)
        yield from dbt.cli(["build", "--vars", home], context=context, target_path=target).stream()
        _keep_parse(target, platform.paths.dbt, DBT_DIR)

    return _build


def _reuse_parse(kept: Path, target: Path, project_dir: Path) -> None:
    """Start the run from the home's last parse of the project (``partial_parse.msgpack``): dagster-dbt
    would copy the manifest's, parsed without this home's vars, and dbt would parse everything again
    (3.6 of 8.8 s of a ``dbt parse``). dbt checks the copy itself: vars, profile and every file's checksum,
    but not where the project is, though the parse holds its absolute paths (a seed's file): each
    checkout of the project keeps a parse of its own (``_kept_parse``)."""
    if (kept / _kept_parse(project_dir)).exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(kept / _kept_parse(project_dir), target / PARTIAL_PARSE)


def _keep_parse(target: Path, kept: Path, project_dir: Path) -> None:
    """Keep the run's parse for the next run of this checkout; another checkout's is dropped (an upgrade
    in a new place leaves none behind)."""
    if (target / PARTIAL_PARSE).exists():
        mine, partial = _kept_parse(project_dir), kept / f".{PARTIAL_PARSE}.partial"
        shutil.copy(target / PARTIAL_PARSE, partial)
        partial.replace(kept / mine)  # whole or not at all, for a run that starts meanwhile
        for other in kept.glob("partial_parse*.msgpack"):
            if other.name != mine:
                other.unlink(missing_ok=True)


def _kept_parse(project_dir: Path) -> str:
    """The name a checkout's parse is kept under in the home: one per place of the project."""
    return f"partial_parse.{hashlib.sha256(str(project_dir.resolve()).encode()).hexdigest()[:16]}.msgpack"


class DbtCli(DbtCliResource):
    """dagster-dbt's resource without two fixed costs of every run (the platform runs dbt each month):
    it asks the dbt executable its version (``dbt --version``, a process of 2 s), though the executable
    is this environment's own, so the installed dbt-core answers; and it loads dbt's project, profile
    and macros into an adapter of its own (1.3 s in a fresh process, 0.3 s after), which only its
    ``fetch_row_counts``/``fetch_column_metadata`` read, and no asset here asks for them."""

    @cached_property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None


def dbt_resource() -> DbtCli:
    return DbtCli(project_dir=DBT_PROJECT, dbt_executable=str(DBT_EXECUTABLE))
