"""The cross-unit zone: where units are joined on the central citizen key, behind the sharing gate.

The central key is derived here and nowhere else: from the linkage vault's
token of each unit pseudonym, under the central key. Unit zones never hold it.
The citizen index is the zone's register (one row per person known to
folkbokföring); each unit's data is linked to it in its own schema.

The sharing gate: a dataset enters this zone only while a steward's approval of
its current contract version is in force (``pipelines/stewardship``), and only
as its contract says (detail columns, derived indicators or aggregates, within
retention). Every run brings what is approved up to date and drops what is not (a detail table, and
the citizen index, takes only its changed deliveries, under a ledger that forces a rebuild on any other
change), so a revocation, an expiry or a changed contract takes the dataset, and what was
derived from it, out of this zone on the next run; the materialisation says so
and the audit log records it. The gate reads approvals only from a log that
verifies against the heads anchored in this Dagster instance, with every decision
signed by its steward; otherwise it withdraws what the step would share and fails. Folkbokföring needs its own approval too: the
citizen index is its data on the central key (see its contract).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from pipelines.border.sql import hmac_params, hmac_sql
from pipelines.defs.anchors import DagsterAnchors
from pipelines.defs.resources import Platform
from pipelines.defs.units import unit_asset_key
from pipelines.quality.gate import NOT_HELD
from pipelines.stewardship import approvals, audit, ledger, sharing
from pipelines.stewardship.compact import compact
from pipelines.stewardship.contracts import Contract, ContractError, load_contracts
from pipelines.units import UNITS, Unit
from pipelines.units.register import EVENT_ORDER, in_order
from warehouse.layout import Warehouse, connect, has_table, of_deliveries, run, transaction, used

CITIZEN_KEY = hmac_sql("link.link_token", "central")
ENTRY_EVENTS = "('GRUND', 'FODD', 'INFLYTTAD')"
EXIT_EVENTS = "('UTFLYTTAD', 'AVLIDEN')"
REGISTER = "folkbokforing.aviseringar"
_RETRY = dg.RetryPolicy(max_retries=3, delay=5)  # a unit load may briefly hold a zone's lock
KNOWN = "persons_known_to_folkbokforing"
# Metadata of each link: every dataset's sharing state and contract version it ran under (approvals.marked).
LINKED_UNDER = "linked_under"
LEDGER_KEY_ID = "knutpunkt:link-ledger"  # what the central key signs to name itself in a ledger
UNKNOWN_SHARE = (
    0.05  # people who moved away stay in a unit's records; more than this smells of broken linkage
)

# The register's events that are shared: within retention, not held, of a person the vault links.
SHARED_EVENTS = f"""unit.aviseringar a JOIN vault.link link USING (person_pseudonym)
    WHERE a._delivery >= $cutoff AND {NOT_HELD}"""
# One row per person, from every event of theirs that is shared; with $all false, only for the persons
# of the deliveries $changed (a month's index), each still from all their events.
CITIZEN_INDEX_SQL = f"""
WITH events AS (
    SELECT a.*, link.link_token
    FROM {SHARED_EVENTS} AND ($all OR a.person_pseudonym IN (
        SELECT person_pseudonym FROM unit.aviseringar WHERE list_contains($changed::VARCHAR[], _delivery)))
),
person AS (
    SELECT link_token,
        any_value(birth_year) AS birth_year,
        any_value(sex) AS sex,
        arg_max(district, {in_order()}) FILTER (event NOT IN {EXIT_EVENTS}) AS district,
        list({{'district': district, 'valid_from': event_date}} ORDER BY {", ".join(EVENT_ORDER)})
            FILTER (event NOT IN {EXIT_EVENTS} AND district IS NOT NULL) AS district_history,
        arg_max(household_key, {in_order()}) FILTER (event NOT IN {EXIT_EVENTS}) AS household_key,
        list({{'household_key': household_key, 'valid_from': event_date}} ORDER BY {", ".join(EVENT_ORDER)})
            FILTER (event NOT IN {EXIT_EVENTS} AND household_key IS NOT NULL) AS household_history,
        min(event_date) FILTER (event IN {ENTRY_EVENTS}) AS first_entry,
        max(event_date) FILTER (event IN {ENTRY_EVENTS}) AS last_entry,
        max(event_date) FILTER (event IN {EXIT_EVENTS}) AS last_exit
    FROM events GROUP BY link_token
)
SELECT {CITIZEN_KEY} AS citizen_key, birth_year, sex, district, district_history, household_key,
    household_history,
    coalesce(first_entry, $first_event) AS valid_from,
    CASE WHEN last_exit >= coalesce(last_entry, last_exit) THEN last_exit END AS valid_to
FROM person link
"""
FIRST_EVENT_SQL = f"SELECT min(event_date) FROM {SHARED_EVENTS}"


@dg.asset(
    key=dg.AssetKey(["cross_unit", "citizen_index"]),
    deps=[unit_asset_key("folkbokforing")],
    group_name="cross_unit",
    description="One row per person known to folkbokföring, keyed by the central citizen key: "
    "birth year, sex, district and household key (latest, and each with the date it began), valid from/to. "
    "No birth date, name or address. "
    "Built only while folkbokföring's steward approval is in force.",
    pool="duckdb_cross_unit",
    kinds={"duckdb"},
    retry_policy=_RETRY,
    automation_condition=dg.AutomationCondition.eager(),
)
def citizen_index(context: dg.AssetExecutionContext, platform: Platform) -> dg.MaterializeResult:
    paths, contract = platform.paths, load_contracts()[REGISTER]
    state = approvals.status(contract, _verified(context, platform))
    if not state.approved:
        with _cross_unit(platform.warehouse, "folkbokforing") as con:
            withdrawn = _drop(con, "main", "citizen_index")
        line = _withheld(context, contract, state, withdrawn, paths, run_id=context.run.run_id)
        if withdrawn:
            compact(platform.warehouse.cross_unit)
        return dg.MaterializeResult(
            metadata={"persons": 0, "sharing": line, LINKED_UNDER: _marks((contract, state)), **_head(paths)}
        )
    central_key = platform.keyring().central()
    with _cross_unit(platform.warehouse, "folkbokforing") as con:
        how = index_persons(
            con, contract, hmac_params("central", central_key), central_key.pseudonym(LEDGER_KEY_ID)
        )
        rows, living = run(con, "SELECT count(*), count(*) FILTER (valid_to IS NULL) FROM citizen_index")[0]
    _published(contract, rows, "citizen_index", paths, context.run.run_id)
    return dg.MaterializeResult(
        metadata={
            "persons": rows,
            "currently_registered": living,
            "indexed": how,
            "sharing": f"published ({state.reason})",
            LINKED_UNDER: _marks((contract, state)),
            **_head(paths),
        }
    )


def index_persons(con: duckdb.DuckDBPyConnection, contract: Contract, central: dict, key_id: str) -> str:
    """Bring the citizen index up to date with the register's shared deliveries; say how.

    Kept per delivery like a detail table (``pipelines.stewardship.ledger``): when deliveries were only
    added, the persons they mention are indexed anew from all their events and nobody else is touched (a
    month: 16,000 of 1,000,000 persons). Any delivery gone or loaded again, or another contract, central
    key or first event (every person without an entry event starts then), rebuilds the whole index."""
    bound = sharing.params(contract) | central
    first_event = run(con, FIRST_EVENT_SQL, used(FIRST_EVENT_SQL, bound))[0][0]
    basis = ledger.basis(contract.version, CITIZEN_INDEX_SQL, key_id, str(first_event))
    deliveries = ledger.eligible(con, "aviseringar", bound)
    held = ledger.read(con, "main.citizen_index", basis)
    changed, gone = ledger.changes(held or {}, deliveries)
    rebuild = held is None or bool(gone)
    bound |= {"first_event": first_event, "all": rebuild, "changed": changed}
    with transaction(con):
        if rebuild:
            sql = f"CREATE OR REPLACE TABLE citizen_index AS {CITIZEN_INDEX_SQL} ORDER BY citizen_key"
            run(con, sql, used(sql, bound))
        elif changed:
            run(
                con,
                f"CREATE OR REPLACE TEMP TABLE fresh AS {CITIZEN_INDEX_SQL}",
                used(CITIZEN_INDEX_SQL, bound),
            )
            run(con, "DELETE FROM citizen_index WHERE citizen_key IN (SELECT citizen_key FROM fresh)")
            run(con, "INSERT INTO citizen_index BY NAME SELECT * FROM fresh")
            run(con, "DROP TABLE fresh")
        ledger.write(con, "main.citizen_index", basis, deliveries)
    return "rebuilt" if rebuild else f"{len(changed)} of {len(deliveries)} deliveries indexed anew"


def link_key(unit: str) -> dg.AssetKey:
    """The cross-unit asset that takes ``unit``'s deliveries: folkbokföring's is the citizen index."""
    return citizen_index.key if unit == "folkbokforing" else dg.AssetKey(["cross_unit", unit])


def build_link_asset(unit: Unit) -> dg.AssetsDefinition:
    @dg.asset(
        key=link_key(unit.name),
        deps=[unit_asset_key(unit.name), citizen_index.key],
        group_name="cross_unit",
        description=f"{unit.title} in the cross-unit zone, as far as its stewards approved "
        f"(tables {', '.join(f'{unit.name}.{d.name}' for d in unit.datasets)}; detail and derived "
        "rows on the central citizen key, aggregates without it).",
        pool="duckdb_cross_unit",
        kinds={"duckdb"},
        retry_policy=_RETRY,
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[
            dg.AssetCheckSpec(
                KNOWN,
                asset=link_key(unit.name),
                description="Linked rows whose person folkbokföring does not know (moved away, or never "
                f"registered) are flagged and kept; WARN when they are more than {UNKNOWN_SHARE:.0%}.",
            )
        ],
    )
    def _link(context: dg.AssetExecutionContext, platform: Platform) -> dg.MaterializeResult:
        paths, contracts = platform.paths, load_contracts()
        entries = _verified(context, platform)  # a tampered log stops sharing until someone looks
        central_key = platform.keyring().central()
        central, key_id = hmac_params("central", central_key), central_key.pseudonym(LEDGER_KEY_ID)
        metadata, lines, withdrawn_any, linked, states = {}, [], False, {}, []
        with _cross_unit(platform.warehouse, unit.name) as con:
            run(con, f"CREATE SCHEMA IF NOT EXISTS {unit.name}")
            for d in unit.datasets:
                contract = contracts[f"{unit.name}.{d.name}"]
                state = approvals.status(contract, entries)
                states.append((contract, state))
                if not state.approved:
                    withdrawn = _drop(con, unit.name, d.name)
                    withdrawn_any |= withdrawn
                    line = _withheld(context, contract, state, withdrawn, paths, entries, context.run.run_id)
                    metadata[d.name], lines = 0, [*lines, f"| {d.name} | {line} |"]
                    continue
                try:
                    rows, how = _publish(con, contract, central, key_id)
                except Exception as e:
                    if _drop(con, unit.name, d.name):  # never leave an unverified output behind
                        details = {"state": "refused", "why": type(e).__name__, "run_id": context.run.run_id}
                        audit.record(
                            "withdraw",
                            dataset=contract.key,
                            contract_version=contract.version,
                            details=details,
                            paths=paths,
                        )
                    if isinstance(e, ContractError | duckdb.PermissionException):  # a retry cannot fix it
                        raise dg.Failure(str(e), allow_retries=False) from e
                    raise
                _published(contract, rows, f"{unit.name}.{d.name}", paths, context.run.run_id)
                metadata[d.name] = rows
                lines.append(
                    f"| {d.name} | published, {contract.sharing.level}: {rows} rows, {how} ({state.reason}) |"
                )
                if contract.has_persons and contract.sharing.level != "aggregate":
                    linked[d.name] = _known(con, f"{unit.name}.{d.name}")
        if withdrawn_any:
            compact(platform.warehouse.cross_unit)  # a dropped table's bytes stay in freed blocks otherwise
        table = "| dataset | sharing |\n|---|---|\n" + "\n".join(lines)
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "sharing": dg.MetadataValue.md(table),
                LINKED_UNDER: _marks(*states),
                **_head(paths),
            },
            check_results=[_known_check(linked)],
        )

    return _link


def _verified(context: dg.AssetExecutionContext, platform: Platform) -> list[audit.Entry]:
    """The audit entries, if the log verifies against Dagster's anchors and its signatures.

    Fails closed: otherwise no approval in that log can be trusted (a revocation may have been
    cut off), so every table of the cross-unit zone is dropped, not only this step's (a step
    that fails here would keep the others from running), and the step fails without retrying.
    """
    try:
        return audit.verify_anchored(DagsterAnchors(context.instance), platform.paths)
    except audit.AuditError as e:
        with connect(platform.warehouse.cross_unit) as con:
            tables = run(con, "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary")
            dropped = [f"{s}.{t}" for s, t in tables if _drop(con, s, t)]
        if dropped:
            compact(platform.warehouse.cross_unit)
            context.log.warning(f"withdrawn, the audit log does not verify: {', '.join(dropped)}")
        raise dg.Failure(f"the audit log does not verify, nothing is shared: {e}", allow_retries=False) from e


def _known(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int, int]:
    """(rows on a citizen key, of which unknown to folkbokföring, of which not judged: no register shared)."""
    return run(
        con,
        f"""SELECT count(*), count(*) FILTER (known_to_folkbokforing = false),
                count(*) FILTER (known_to_folkbokforing IS NULL)
            FROM {table} WHERE citizen_key IS NOT NULL""",
    )[0]


def _known_check(linked: dict[str, tuple[int, int, int]]) -> dg.AssetCheckResult:
    rows, unknown, unjudged = (sum(c[i] for c in linked.values()) for i in range(3))
    share = unknown / rows if rows else 0.0
    if unjudged:
        why = f"{unjudged} rows cannot be judged: folkbokföring's register is not shared"
    elif share > UNKNOWN_SHARE:
        why = f"{share:.1%} of linked rows are unknown to folkbokföring (more than {UNKNOWN_SHARE:.0%})"
    else:
        why = None
    return dg.AssetCheckResult(
        check_name=KNOWN,
        passed=why is None,
        severity=dg.AssetCheckSeverity.WARN,
        description=why,
        metadata={
            "rows_linked": rows,
            "rows_unknown_to_folkbokforing": unknown,
            "share_unknown": round(share, 4),
            "per_dataset": dg.MetadataValue.json(
                {d: {"rows": c[0], "unknown": c[1]} for d, c in linked.items()}
            ),
        },
    )


def _publish(
    con: duckdb.DuckDBPyConnection, contract: Contract, central: dict, key_id: str
) -> tuple[int, str]:
    """Make the dataset's table exactly what its contract shares; return its row count and how.

    Detail rows are linked per delivery (``pipelines.stewardship.ledger``): a table whose ledger was
    written under the same contract, central key and register gets only its changed deliveries; any
    other table is rebuilt. The central key is an HMAC (two SHA-256) of the person's link token: derived
    once per person of the dataset, not once per row (a contact centre's person has dozens), three
    times faster at 60,000 x 5 with every row the same."""
    bound = sharing.params(contract) | central
    sharing.check_output(con, contract, bound)
    table, shared = f"{contract.unit}.{contract.dataset}", sharing.shared_sql(contract)
    indexed = has_table(con, "main", "citizen_index")
    rebuild = f"CREATE OR REPLACE TABLE {table} AS " + (
        shared if contract.sharing.level == "aggregate" else _linked_sql(shared, indexed)
    )
    if contract.sharing.level != "detail":
        run(con, rebuild, used(rebuild, bound))
        return _rows(con, table), "rebuilt"
    basis = ledger.basis(contract.version, shared, key_id, indexed)
    deliveries = ledger.eligible(con, contract.dataset, bound)
    held = ledger.read(con, table, basis)
    with transaction(con):
        if held is None:
            run(con, rebuild, used(rebuild, bound))
            how = "rebuilt"
        else:
            changed, gone = ledger.changes(held, deliveries)
            _relink(con, table, shared, indexed, bound, changed, gone)
            how = f"{len(changed)} of {len(deliveries)} deliveries linked anew, {len(gone)} taken out"
        ledger.write(con, table, basis, deliveries)
    return _rows(con, table), how


def _relink(
    con: duckdb.DuckDBPyConnection,
    table: str,
    shared: str,
    indexed: bool,
    bound: dict,
    changed: list[str],
    gone: list[str],
) -> None:
    """Take the rows of ``gone`` out, link those of ``changed``, flag the rest known anew."""
    if gone:
        condition, params = of_deliveries(gone)
        run(con, f"DELETE FROM {table} WHERE {condition}", params)
    if changed:
        condition, params = of_deliveries(changed)
        sql = f"INSERT INTO {table} BY NAME {_linked_sql(shared, indexed, condition)}"
        run(con, sql, used(sql, bound | params))
    if indexed:
        _flag_known(con, table)


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return run(con, f"SELECT count(*) FROM {table}")[0][0]


def _linked_sql(shared: str, indexed: bool, where: str = "true") -> str:
    """The shared rows (those ``where`` selects) with the central key for the unit pseudonym, flagged
    known or not to folkbokföring (NULL without a register)."""
    known = "ci.citizen_key IS NOT NULL" if indexed else "NULL::BOOLEAN"
    join = "LEFT JOIN citizen_index ci ON ci.citizen_key = keyed.citizen_key" if indexed else ""
    return f"""
        WITH s AS (SELECT * FROM ({shared}) WHERE {where}),
        keyed AS (
            SELECT person_pseudonym, {CITIZEN_KEY} AS citizen_key
            FROM (SELECT DISTINCT person_pseudonym FROM s) JOIN vault.link link USING (person_pseudonym)
        )
        SELECT keyed.citizen_key, s.* EXCLUDE (person_pseudonym), {known} AS known_to_folkbokforing
        FROM s LEFT JOIN keyed USING (person_pseudonym)
        {join}
    """


def _flag_known(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Rows linked earlier whose person folkbokföring has come to know, or no longer knows."""
    run(
        con,
        f"""UPDATE {table} t SET known_to_folkbokforing = NOT t.known_to_folkbokforing
            FROM (
                SELECT citizen_key, (citizen_key IN (SELECT citizen_key FROM citizen_index)) AS known
                FROM (SELECT DISTINCT citizen_key FROM {table} WHERE citizen_key IS NOT NULL)
            ) k
            WHERE t.citizen_key = k.citizen_key AND t.known_to_folkbokforing <> k.known""",
    )


def _published(contract: Contract, rows: int, table: str, paths, run_id: str) -> None:
    audit.record(
        "publish",
        dataset=contract.key,
        contract_version=contract.version,
        details={"table": table, "rows": rows, "level": contract.sharing.level, "run_id": run_id},
        paths=paths,
    )


def _withheld(
    context: dg.AssetExecutionContext,
    contract: Contract,
    state: approvals.Status,
    withdrawn: bool,
    paths,
    entries: list[audit.Entry] | None = None,
    run_id: str = "",
) -> str:
    """Audit an expiry (once) and a withdrawal, warn in the run log; return the line for the metadata."""
    entries = entries if entries is not None else audit.read(paths)
    if state.state == "expired" and not any(
        e.action == "expire" and e.dataset == contract.key and e.seq > state.decision.seq for e in entries
    ):
        audit.record(
            "expire",
            dataset=contract.key,
            contract_version=state.decision.contract_version,
            details={"expired_on": state.decision.details["expires"], "run_id": run_id},
            paths=paths,
        )
    if not withdrawn:
        return f"not shared: {state.state} ({state.reason})"
    audit.record(
        "withdraw",
        dataset=contract.key,
        contract_version=contract.version,
        details={"state": state.state, "why": state.reason, "run_id": run_id},
        paths=paths,
    )
    context.log.warning(f"{contract.key} withdrawn from the cross-unit zone: {state.state} ({state.reason})")
    return f"WITHDRAWN: {state.state} ({state.reason})"


def _marks(*states: tuple[Contract, approvals.Status]) -> dg.MetadataValue:
    return dg.MetadataValue.json({c.key: approvals.marked(c, state) for c, state in states})


def _head(paths) -> dict:
    """The audit log's head, anchored in Dagster's event log so a rewritten log can be caught."""
    entries = audit.read(paths)
    return {"audit_head": f"{entries[-1].seq} {entries[-1].hash}" if entries else "empty"}


def _drop(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    existed = has_table(con, schema, table)
    run(con, f"DROP TABLE IF EXISTS {schema}.{table}")
    return existed


@contextmanager
def _cross_unit(wh: Warehouse, unit: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the cross-unit zone for writing with one unit zone (and its vault, if any) attached read-only,
    then lock the connection against any other file."""
    attached = {"unit": wh.unit_zone(unit)}
    if UNITS[unit].has_persons:
        attached["vault"] = wh.vault(unit)
    for path in attached.values():
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: materialise units/{unit} first")
    with connect(wh.cross_unit) as con:
        for alias, path in attached.items():
            run(con, f"ATTACH '{path}' AS {alias} (READ_ONLY)")
        sharing.lock_down(con)  # contract SQL runs here: no file beyond what is attached
        yield con


LINK_ASSETS = [build_link_asset(u) for u in UNITS.values() if u.name != "folkbokforing"]
