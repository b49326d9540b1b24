"""Stewardship end to end on a small synthetic municipality: contracts, approvals, the sharing gate.

The module loads folkbokföring, socialtjänst and skola once (real border, real
DuckDB files); each test works on its own copy of that home and of the
contracts, approves or revokes through the CLI or the approvals module, and
links through a real Dagster run of the link job.
"""

import json
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.border.keys import keyring_from_env
from pipelines.cli import main
from pipelines.definitions import LINK_JOB, defs
from pipelines.defs.anchors import DagsterAnchors, platform_anchors
from pipelines.defs.cross_unit import citizen_index
from pipelines.defs.discovery import DISCOVERY_KEYS
from pipelines.defs.publish import SNAPSHOT_KEY, downstream
from pipelines.defs.resources import Platform
from pipelines.defs.stewardship import steward_decisions
from pipelines.ingest.transform import border_query
from pipelines.settings import Paths
from pipelines.stewardship import approvals, audit, signing
from pipelines.stewardship.contracts import DEFAULT_DIR, LINEAGE_COLUMNS, load_contracts
from pipelines.units import UNITS
from tests.conftest import SMALL_LOADED, held_open, load_checked, small_municipality
from tests.leaks import forms_in_landing, hits_in_duckdb, hits_in_files
from warehouse.layout import Warehouse

LOADED = SMALL_LOADED
AID = "socialtjanst.ekonomiskt_bistand"
REGISTER = "folkbokforing.aviseringar"
LATER = str(date.today() + timedelta(days=90))
# What the cross-unit zone adds to a shared dataset's own columns.
ZONE_COLUMNS = {"citizen_key", "known_to_folkbokforing", "_delivery"}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return small_municipality(tmp_path_factory)


@pytest.fixture
def paths(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A fresh copy of the loaded home and of the contracts, and no steward decisions yet."""
    shutil.copytree(base / "home", tmp_path / "home")
    shutil.copytree(base / "secrets", tmp_path / "secrets")  # steward keys are made beside the key file
    shutil.copytree(DEFAULT_DIR, tmp_path / "contracts")
    monkeypatch.setenv("KNUTPUNKT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KNUTPUNKT_KEY_FILE", str(tmp_path / "secrets" / "pseudonym.key"))
    monkeypatch.setenv("KNUTPUNKT_CONTRACTS", str(tmp_path / "contracts"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))  # the CLI sets it
    (tmp_path / "home" / "dagster").mkdir(exist_ok=True)
    monkeypatch.delenv("KNUTPUNKT_PSEUDONYM_KEY", raising=False)
    for steward in STEWARDS:  # registered stewards; their keys sit beside the pseudonym key
        signing.create_key(steward)
    return Paths.from_env()


@pytest.fixture
def anchors(paths: Paths) -> Iterator[DagsterAnchors]:
    """The heads in this home's Dagster instance, where the CLI and the link runs anchor decisions."""
    with platform_anchors(paths) as store:
        yield store


STEWARDS = ("Anna Berg, enhetschef", "Anna Berg", "Registeransvarig", "Rektor")
LINK_SELECTION = [citizen_index.key, *(dg.AssetKey(["cross_unit", u]) for u in LOADED[1:])]


def _link(instance: dg.DagsterInstance | None = None, ok: bool = True) -> dg.ExecuteInProcessResult:
    """A link run on the platform's Dagster instance (``DAGSTER_HOME``), where decisions are anchored."""
    if instance is None:
        with dg.DagsterInstance.get() as platform:
            return _link(platform, ok)
    result = (
        defs()
        .resolve_job_def(LINK_JOB.name)
        .execute_in_process(instance=instance, asset_selection=LINK_SELECTION, raise_on_error=False)
    )
    assert result.success == ok
    return result


def _metadata(result: dg.ExecuteInProcessResult, unit: str) -> dict:
    [event] = [
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["cross_unit", unit])
    ]
    return {k: v.value for k, v in event.metadata.items()}


def _approve(dataset: str, expires: str = LATER) -> None:
    purpose = load_contracts()[dataset].purposes[0].name
    argv = ["steward", "approve", dataset, "--steward", "Anna Berg, enhetschef", "--purpose", purpose]
    assert main([*argv, "--expires", expires]) == 0


def _tables(paths: Paths) -> dict[str, list[str]]:
    """Every table of the cross-unit zone with its columns."""
    with duckdb.connect(str(Warehouse(paths.warehouse).cross_unit), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        return {
            f"{s}.{t}": [r[0] for r in con.execute(f'DESCRIBE "{s}"."{t}"').fetchall()] for s, t in tables
        }


def _query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_unit_dataset_has_a_contract_whose_columns_are_the_zone_columns(base):
    contracts = load_contracts(DEFAULT_DIR)
    assert len(contracts) == sum(len(u.datasets) for u in UNITS.values())
    for unit in UNITS.values():
        for ds in unit.datasets:
            c = contracts[f"{unit.name}.{ds.name}"]
            described = {col.name.lower() for col in c.columns}
            assert described == {n.lower() for n in border_query(ds, unit.format).loaded_columns}, c.key
            if unit.name in LOADED:
                zone = Warehouse(Paths(base / "home").warehouse).unit_zone(unit.name)
                actual = {r[0].lower() for r in _query(zone, f"DESCRIBE {ds.name}")} - set(LINEAGE_COLUMNS)
                assert described == actual, c.key
            if c.classification in ("secret", "strong_secrecy"):
                assert c.osl and "OSL" in c.osl, c.key
            if c.classification == "strong_secrecy":
                assert c.sharing.level != "detail", f"{c.key}: strong secrecy is never shared row by row"


@pytest.mark.platform
def test_pending_datasets_stay_in_their_unit(paths, anchors):
    assert {s.state for s in approvals.statuses(load_contracts(), paths, anchors=anchors).values()} == {
        "pending"
    }
    result = _link()
    assert _tables(paths) == {}
    meta = _metadata(result, "socialtjanst")
    assert meta["ekonomiskt_bistand"] == 0
    assert "not shared: pending" in meta["sharing"]


@pytest.mark.platform
def test_socialtjanst_approved_as_derived_shares_only_its_indicators(paths):
    for dataset in (REGISTER, AID, "socialtjanst.barnutredningar", "skola.inskrivning"):
        _approve(dataset)
    _link()
    tables, contracts = _tables(paths), load_contracts()
    aid = contracts[AID]
    assert tables["socialtjanst.ekonomiskt_bistand"] == [
        "citizen_key",
        "quarter",
        "has_economic_aid",
        "months_with_aid",
        "known_to_folkbokforing",
    ]
    for table, columns in tables.items():
        if table.startswith("socialtjanst."):
            allowed = ZONE_COLUMNS | set(contracts[table].sharing.output_columns)
            assert set(columns) <= allowed, table
    assert "citizen_key" not in tables["socialtjanst.barnutredningar"]  # an aggregate has no person rows

    wh = Warehouse(paths.warehouse)
    expected = _query(wh.unit_zone("socialtjanst"), aid.sharing.sql)
    shared = _query(
        wh.cross_unit,
        "SELECT count(*), count(DISTINCT citizen_key), count(*) FILTER (known_to_folkbokforing) "
        "FROM socialtjanst.ekonomiskt_bistand",
    )[0]
    persons = len({row[0] for row in expected})
    assert shared[0] == len(expected) > 0 and shared[1] == persons
    assert shared[2] > 0, "aid recipients are found in the citizen index"
    small = _query(wh.cross_unit, "SELECT count(*) FROM socialtjanst.barnutredningar WHERE children < 10")
    assert small == [(0,)]


@pytest.mark.platform
def test_revoking_removes_the_dataset_on_the_next_run_and_the_audit_shows_it(paths, capsys):
    for dataset in (REGISTER, AID, "skola.inskrivning"):
        _approve(dataset)
    _link()
    assert "socialtjanst.ekonomiskt_bistand" in _tables(paths)
    cross = Warehouse(paths.warehouse).cross_unit
    assert b"months_with_aid" in cross.read_bytes(), "the test must see the table in the file before"

    argv = ["steward", "revoke", AID, "--steward", "Anna Berg, enhetschef", "--reason", "purpose ended"]
    assert main(argv) == 0
    meta = _metadata(_link(), "socialtjanst")
    assert meta["ekonomiskt_bistand"] == 0 and "WITHDRAWN: revoked" in meta["sharing"]

    indicators = {"has_economic_aid", "months_with_aid", "amount_sek", "household_type"}
    for table, columns in _tables(paths).items():
        assert not table.endswith("ekonomiskt_bistand"), table
        assert not indicators & set(columns), table
    assert "skola.inskrivning" in _tables(paths), "other units are unaffected"
    assert b"months_with_aid" not in cross.read_bytes(), "a withdrawn table must leave the disk too"

    actions = [(e.action, e.details.get("steward")) for e in audit.verify(paths) if e.dataset == AID]
    assert actions == [
        ("approve", "Anna Berg, enhetschef"),
        ("publish", None),
        ("revoke", "Anna Berg, enhetschef"),
        ("withdraw", None),
    ]
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert "verifies" in capsys.readouterr().out


@pytest.mark.platform
def test_revoking_the_register_removes_the_citizen_index_and_what_was_derived_from_it(paths, anchors):
    for dataset in (REGISTER, "skola.inskrivning"):
        _approve(dataset)
    _link()
    cross = Warehouse(paths.warehouse).cross_unit
    assert _query(cross, "SELECT count(*) FILTER (known_to_folkbokforing) FROM skola.inskrivning")[0][0] > 0

    approvals.revoke(
        load_contracts()[REGISTER],
        "Registeransvarig",
        "register moved to a new system",
        paths,
        anchors=anchors,
    )
    _link()
    assert "main.citizen_index" not in _tables(paths)
    # Whether a pupil is known to folkbokföring came from the register: it is gone too.
    assert _query(
        cross, "SELECT count(*) FILTER (known_to_folkbokforing IS NOT NULL) FROM skola.inskrivning"
    ) == [(0,)]


@pytest.mark.platform
def test_an_expired_approval_withdraws_the_dataset_and_is_audited_once(paths, anchors):
    _approve(AID)
    _link()
    assert "socialtjanst.ekonomiskt_bistand" in _tables(paths)
    # An approval whose date has passed (the CLI refuses a past date; the record is what a year brings).
    contract = load_contracts()[AID]
    approvals.approve(
        contract,
        "Anna Berg",
        "tidiga_insatser",
        date.today() - timedelta(days=1),
        paths=paths,
        anchors=anchors,
    )
    assert approvals.statuses(load_contracts(), paths, anchors=anchors)[AID].state == "expired"
    meta = _metadata(_link(), "socialtjanst")
    assert "WITHDRAWN: expired" in meta["sharing"]
    _link()
    assert "socialtjanst.ekonomiskt_bistand" not in _tables(paths)
    actions = [e.action for e in audit.verify(paths) if e.dataset == AID]
    assert actions == ["approve", "publish", "approve", "expire", "withdraw"]
    assert (
        main(
            [
                "steward",
                "approve",
                AID,
                "--steward",
                "x",
                "--purpose",
                "tidiga_insatser",
                "--expires",
                "2020-01-01",
            ]
        )
        == 1
    )


@pytest.mark.platform
def test_editing_a_contract_returns_it_to_pending(paths, anchors):
    _approve(AID)
    path = Path(load_contracts()[AID].path)
    path.write_text(path.read_text() + "# a comment is not content\n")
    assert approvals.statuses(load_contracts(), paths, anchors=anchors)[AID].state == "approved"

    path.write_text(
        path.read_text().replace(
            "count(DISTINCT month) AS months_with_aid", "sum(amount_sek) AS months_with_aid"
        )
    )
    status = approvals.statuses(load_contracts(), paths, anchors=anchors)[AID]
    assert status.state == "pending" and "contract changed" in status.reason
    assert "not shared: pending" in _metadata(_link(), "socialtjanst")["sharing"]
    assert "socialtjanst.ekonomiskt_bistand" not in _tables(paths)

    _approve(AID)
    assert approvals.statuses(load_contracts(), paths, anchors=anchors)[AID].state == "approved"


def _approve_by_hand_and_link(paths: Paths, anchors: DagsterAnchors) -> dg.ExecuteInProcessResult:
    """Approve economic aid past the CLI's checks (an older tool, a hand-made entry), then link socialtjänst."""
    contract, expires = load_contracts()[AID], date.fromisoformat(LATER)
    approvals.approve(contract, "Anna Berg", "tidiga_insatser", expires, paths=paths, anchors=anchors)
    selection = [dg.AssetKey(["cross_unit", "socialtjanst"])]
    with dg.DagsterInstance.get() as instance:
        job = defs().resolve_job_def(LINK_JOB.name)
        return job.execute_in_process(instance=instance, asset_selection=selection, raise_on_error=False)


@pytest.mark.platform
def test_a_contract_whose_sql_shares_more_than_it_declares_is_refused(paths, anchors):
    _approve(AID)
    _link()
    path = Path(load_contracts()[AID].path)
    path.write_text(
        path.read_text().replace(
            "true AS has_economic_aid,", "true AS has_economic_aid, any_value(amount_sek) AS amount_sek,"
        )
    )
    purpose = ["--purpose", "tidiga_insatser", "--expires", LATER]
    assert main(["steward", "approve", AID, "--steward", "Anna Berg", *purpose]) == 1, "the CLI refuses it"
    # Approved anyway (an older tool, a hand-made entry): the gate refuses it too.
    result = _approve_by_hand_and_link(paths, anchors)
    assert not result.success
    assert not any(t.startswith("socialtjanst.ekonomiskt") for t in _tables(paths))
    last = audit.verify(paths)[-1]
    assert (last.action, last.dataset, last.details["state"]) == ("withdraw", AID, "refused")
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried == [], "a retry cannot fix a contract"


@pytest.mark.platform
def test_a_contract_whose_sql_reads_landing_is_refused_and_leaks_nothing(paths, anchors):
    """Probe: an approved contract's SQL puts raw personnummer from landing/ into a declared indicator."""
    month = sorted(p.name for p in (paths.landing / "socialtjanst").iterdir())[0]
    landing = paths.landing / "socialtjanst" / month / "ekonomiskt_bistand.csv"
    stolen = (
        f"(SELECT string_agg(DISTINCT Personnr, ' ') FROM read_csv('{landing}', delim=';', "
        "header=true, all_varchar=true, encoding='latin-1'))"
    )
    path = Path(load_contracts()[AID].path)
    path.write_text(
        path.read_text().replace(
            "count(DISTINCT month) AS months_with_aid", f"any_value({stolen}) AS months_with_aid"
        )
    )
    purpose = ["--purpose", "tidiga_insatser", "--expires", LATER]
    assert main(["steward", "approve", AID, "--steward", "Anna Berg", *purpose]) == 1, "show refuses it"
    result = _approve_by_hand_and_link(paths, anchors)
    assert not result.success, "the gate must refuse a contract that reads files"
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "file system operations are disabled" in str(failure.event_specific_data.error)
    cross = Warehouse(paths.warehouse).cross_unit
    assert not any(t.startswith("socialtjanst.ekonomiskt") for t in _tables(paths))
    assert hits_in_duckdb(cross, forms_in_landing(paths.landing)) == {}


@pytest.mark.platform
def test_show_displays_what_would_be_shared_its_quality_and_risk(paths, capsys):
    assert main(["steward", "show", AID]) == 0
    out = capsys.readouterr().out
    zone = Warehouse(paths.warehouse).unit_zone("socialtjanst")
    sql = load_contracts()[AID].sharing.sql
    rows, persons = _query(zone, f"SELECT count(*), count(DISTINCT person_pseudonym) FROM ({sql})")[0]
    assert f"rows that would be shared: {rows:,}; persons: {persons:,}" in out
    assert "has_economic_aid" in out and "Status: pending" in out
    assert "Quality" in out and "Deliveries 12" in out
    assert f"persons: {persons}" in out and "k_min:" in out and "district_from_register: True" in out

    _approve(AID)
    _link()
    linked = ", ".join(_tables(paths)["socialtjanst.ekonomiskt_bistand"])
    assert f"Columns in the cross-unit zone: {linked}\n" in out, "show displays exactly what the gate shares"


def test_a_log_whose_steward_key_is_gone_stops_the_demo_approvals_in_one_line(
    paths, tmp_path, monkeypatch, anchors
):
    """An old home whose steward keys were lost (a new machine, a wiped HOME): the main job's demo
    steward approves nothing and says why in one line, instead of a traceback; nothing is approved."""
    from io import StringIO

    from rich.console import Console

    from pipelines.stewardship.cli import approve_demo

    contracts = load_contracts()
    approvals.revoke(contracts["skola.meritvarde"], "Rektor", "not needed", paths, anchors=anchors)
    shutil.copytree(signing.keys_dir(), tmp_path / "stewards")  # the module's stewards keep their keys
    monkeypatch.setenv(signing.KEYS_ENV, str(tmp_path / "stewards"))
    (signing.keys_dir() / f"{signing.steward_id('Rektor')}.pub").unlink()
    entries = audit.log_path(paths).read_text()
    out = StringIO()
    approve_demo(paths, Console(file=out, width=80), anchors)
    assert "no approvals: the stewards' audit log does not verify" in out.getvalue()
    assert "\n" not in out.getvalue().strip(), out.getvalue()
    assert audit.log_path(paths).read_text() == entries, "nothing may be approved on an unverified log"


def test_demo_steward_approves_only_undecided_datasets(paths, anchors):
    contracts = load_contracts()
    approvals.revoke(contracts["skola.meritvarde"], "Rektor", "not needed", paths, anchors=anchors)
    approved = approvals.approve_demo_datasets(contracts, paths, anchors=anchors)
    assert len(approved) == len(contracts) - 1 and "skola.meritvarde" not in approved
    assert approvals.approve_demo_datasets(contracts, paths, anchors=anchors) == []
    states = approvals.statuses(contracts, paths, anchors=anchors)
    assert states["skola.meritvarde"].state == "revoked"
    assert {s.state for k, s in states.items() if k != "skola.meritvarde"} == {"approved"}


@pytest.mark.platform
def test_stewardship_records_hold_no_personnummer_and_no_keys(paths, anchors):
    for dataset in (REGISTER, AID, "skola.inskrivning"):
        _approve(dataset)
    _link()
    approvals.revoke(load_contracts()[AID], "Anna Berg", "done", paths, anchors=anchors)
    _link()
    written = audit.folder(paths)
    forms = forms_in_landing(paths.landing)
    assert forms and hits_in_files(written, forms) == {}
    text = "".join(p.read_text() for p in written.iterdir() if p.is_file())
    keys = _query(Warehouse(paths.warehouse).cross_unit, "SELECT citizen_key FROM skola.inskrivning LIMIT 50")
    assert keys and not any(k in text for (k,) in keys)
    assert keyring_from_env().master.hex() not in text
    with pytest.raises(ValueError, match="personnummer"):
        approvals.revoke(load_contracts()[AID], "Anna 19811218-9876", "x", paths, anchors=anchors)


@pytest.mark.platform
def test_a_log_rewritten_with_a_valid_chain_is_caught_by_the_heads_recorded_in_dagster(paths, capsys):
    _approve(AID)  # through the CLI, which prepares this home's Dagster instance
    with dg.DagsterInstance.get() as instance:
        _link(instance)
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert "heads recorded in Dagster match" in capsys.readouterr().out

    # Rewrite history without the approval: a fresh, internally valid chain and head.
    entries = audit.read(paths)
    audit.log_path(paths).unlink()
    audit.head_path(paths).unlink()
    for e in entries[1:]:
        audit.record(e.action, actor=e.actor, dataset=e.dataset, details=e.details, paths=paths)
    assert len(audit.verify(paths)) == len(entries) - 1
    assert main(["audit", "verify"]) == 1
    assert "the log was rewritten" in capsys.readouterr().out


def _shared_then_revoked(link_after_revoke: bool) -> list[audit.Entry]:
    """Approve the aid dataset, link it, revoke it (and link again if asked); return the log."""
    _approve(REGISTER)
    _approve(AID)
    _link()
    assert "socialtjanst.ekonomiskt_bistand" in _tables(paths_of())
    argv = ["steward", "revoke", AID, "--steward", "Anna Berg, enhetschef", "--reason", "purpose ended"]
    assert main(argv) == 0
    if link_after_revoke:
        _link()
        assert "socialtjanst.ekonomiskt_bistand" not in _tables(paths_of())
    return audit.read(paths_of())


def paths_of() -> Paths:
    return Paths.from_env()


def _write_log(paths: Paths, entries: list[audit.Entry]) -> None:
    """What whoever can write the audit folder can do: any lines, and a head file that matches them."""
    lines = [json.dumps(e.as_json(), sort_keys=True, ensure_ascii=True) + "\n" for e in entries]
    audit.log_path(paths).write_text("".join(lines))
    audit.head_path(paths).write_text(f"{entries[-1].seq} {entries[-1].hash}\n")


def _sharing_stops(paths: Paths, capsys) -> None:
    """The gate shares nothing from that log, and neither `steward list` nor `audit verify` accept it."""
    capsys.readouterr()
    assert main(["steward", "list"]) == 1, "steward list must not show approvals from that log"
    assert main(["audit", "verify"]) == 1
    assert "does NOT verify" in capsys.readouterr().out
    result = _link(ok=False)
    assert not result.success
    assert not any(t.startswith("socialtjanst.") for t in _tables(paths)), "the revoked data is shared again"


@pytest.mark.platform
def test_probe_a_log_rebuilt_without_the_revocation_stops_sharing(paths, capsys):
    entries = _shared_then_revoked(link_after_revoke=True)
    cut = next(i for i, e in enumerate(entries) if e.action == "revoke")
    _write_log(paths, entries[:cut])  # signed decisions before the cut stay valid, byte for byte
    for e in entries[cut + 1 :]:  # re-chain what came after, without the revocation
        if e.action not in ("approve", "revoke"):
            audit.record(
                e.action,
                dataset=e.dataset,
                contract_version=e.contract_version,
                details=e.details,
                paths=paths,
            )
    assert len(audit.verify(paths)) == len(entries) - 1, "chain, head and signatures hold"
    _sharing_stops(paths, capsys)


@pytest.mark.platform
def test_probe_a_forged_approval_appended_to_the_log_stops_sharing(paths, capsys):
    entries = _shared_then_revoked(link_after_revoke=True)
    last, contract = entries[-1], load_contracts()[AID]
    body = {
        "seq": last.seq + 1,
        "at": last.at,
        "actor": "Anna Berg, enhetschef",
        "os_user": last.os_user,
        "action": "approve",
        "dataset": AID,
        "contract_version": contract.version,
        "details": {
            "steward": "Anna Berg, enhetschef",
            "purpose": "tidiga_insatser",
            "expires": LATER,
            "level": "derived",
            "note": "",
        },
        "prev": last.hash,
    }
    _write_log(paths, [*entries, audit.Entry(**body, hash=audit.entry_hash(body))])
    assert approvals.status(contract, audit.read(paths)).approved, "the forged entry reads as an approval"
    _sharing_stops(paths, capsys)


@pytest.mark.platform
def test_probe_a_revocation_cut_off_after_the_last_link_run_stops_sharing(paths, capsys):
    entries = _shared_then_revoked(link_after_revoke=False)
    assert entries[-1].action == "revoke"
    _write_log(paths, entries[:-1])  # the log and head as they were at the last link run
    assert approvals.status(load_contracts()[AID], audit.verify(paths)).approved
    _sharing_stops(paths, capsys)


def test_a_decision_needs_the_registered_key_of_the_steward_it_names(paths, anchors):
    contract = load_contracts()[AID]
    with pytest.raises(signing.SignatureError, match="no signing key"):
        approvals.approve(
            contract,
            "Okänd Person",
            "tidiga_insatser",
            date.fromisoformat(LATER),
            paths=paths,
            anchors=anchors,
        )
    entry = approvals.approve(
        contract, "Rektor", "tidiga_insatser", date.fromisoformat(LATER), paths=paths, anchors=anchors
    )
    assert entry.signature["key"] == "rektor"
    signing.keys_dir().joinpath("rektor.pub").write_text(
        signing.keys_dir().joinpath("anna-berg.pub").read_text()
    )
    with pytest.raises(audit.AuditError, match="does not verify"):
        audit.verify(paths)


def _links(request: dg.RunRequest) -> list[dg.AssetKey]:
    return [k for k in request.asset_selection if k not in downstream()]


@pytest.mark.platform
@pytest.mark.long
def test_a_steward_decision_relinks_the_unit_without_waiting_for_a_delivery(paths):
    def evaluate(cursor=None) -> dg.SensorResult:
        return steward_decisions()(
            dg.build_sensor_context(instance=instance, cursor=cursor, resources={"platform": Platform()})
        )

    with dg.DagsterInstance.get() as instance:  # where the decisions are anchored
        first = evaluate()
        [request] = first.run_requests  # the loaded units, on a first tick
        assert set(request.asset_selection) == {citizen_index.key} | {
            dg.AssetKey(["cross_unit", u]) for u in LOADED[1:]
        }, "no rebuild of the marts before every unit zone exists"
        assert evaluate(first.cursor).run_requests == []
        keys = keyring_from_env()
        for unit in set(UNITS) - set(LOADED):
            load_checked(UNITS[unit], sorted(p.name for p in (paths.landing / unit).iterdir()), paths, keys)

        _approve(AID)
        [request] = evaluate(first.cursor).run_requests
        assert _links(request) == [dg.AssetKey(["cross_unit", "socialtjanst"])]
        rebuilt = set(request.asset_selection)  # a withdrawal must reach findings and dashboards too
        assert {
            SNAPSHOT_KEY,
            *DISCOVERY_KEYS,
            dg.AssetKey(["cross_unit", "discovery", "citizen_quarter"]),
        } <= rebuilt
        run = (
            defs()
            .resolve_implicit_global_asset_job_def()
            .execute_in_process(
                instance=instance, asset_selection=request.asset_selection, raise_on_error=False
            )
        )
        assert run.success, "the requested relink, rebuild and publish must run as one run"

        _approve(REGISTER)
        [request] = evaluate(first.cursor).run_requests
        assert len(_links(request)) == len(UNITS), "the register relinks every loaded unit"


@pytest.mark.platform
def test_a_decision_made_again_is_relinked_again_and_a_failed_relink_is_asked_for_again(paths, capsys):
    """Dagster runs a sensor's run key once. Revoked, approved and revoked again, the sharing state comes
    back to one it had: the second revocation must be asked for under a new run key, or it would never
    reach the cross-unit zone. A relink whose run failed is asked for again on a tick with no decision."""
    revoke = ["steward", "revoke", AID, "--steward", "Anna Berg, enhetschef", "--reason", "purpose ended"]
    with dg.DagsterInstance.get() as instance:
        evaluate = lambda cursor=None: steward_decisions()(  # noqa: E731
            dg.build_sensor_context(instance=instance, cursor=cursor, resources={"platform": Platform()})
        )
        tick = evaluate()
        asked, states = [tick.run_requests[0].run_key], []
        for decide in (
            lambda: _approve(AID),
            lambda: main(revoke),
            lambda: _approve(AID),
            lambda: main(revoke),
        ):
            decide()
            tick = evaluate(tick.cursor)
            [request] = tick.run_requests
            asked.append(request.run_key)
            states.append(json.loads(tick.cursor)["state"][AID])
        assert states[1] == states[3], "the state came back"
        assert len(set(asked)) == len(asked), asked

        job = defs().resolve_implicit_global_asset_job_def()
        with held_open(Warehouse(paths.warehouse).cross_unit):  # another process holds it: the relink fails
            failed = job.execute_in_process(
                instance=instance,
                asset_selection=request.asset_selection,
                tags=request.tags,
                raise_on_error=False,
            )
        assert not failed.success
        capsys.readouterr()
        [again] = evaluate(tick.cursor).run_requests
        said = capsys.readouterr().err
        assert f"the relink after a steward's decision failed in run {failed.run_id}; asking again" in said
        assert (again.run_key, again.tags) == (f"{request.run_key}#2", request.tags)
        assert set(again.asset_selection) == set(request.asset_selection)
        assert job.execute_in_process(
            instance=instance, asset_selection=again.asset_selection, tags=again.tags
        ).success
        assert evaluate(tick.cursor).run_requests == []
    assert "socialtjanst.ekonomiskt_bistand" not in _tables(paths)
