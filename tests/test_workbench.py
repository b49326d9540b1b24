"""The steward workbench over HTTP, attacked as a browser or a script could: forged posts across
stewards, no session, a wrong or another session's CSRF token, an edited cookie, a reused cookie after
logout, path tricks into Data Docs; and the CLI and the workbench giving the same decisions on the
same audit log.

One ``knutpunkt workbench`` (the installed console script, in its own process) serves a copy of the
small loaded home of ``tests/workbench.py`` for the whole module; every probe checks that the audit
log did not move.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from pipelines.stewardship import audit
from tests.conftest import knutpunkt, small_municipality
from tests.workbench import (
    AID_STEWARD,
    REGISTRAR,
    SCHOOL,
    Platform,
    copy_platform,
    csrf,
    log_in,
    states,
    version,
    workbench,
)

pytestmark = pytest.mark.ui  # starts a server
AID = "socialtjanst.ekonomiskt_bistand"
REGISTER = "folkbokforing.aviseringar"
ENROLMENT = "skola.inskrivning"
LATER = (date.today() + timedelta(days=200)).isoformat()


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    with copy_platform(
        small_municipality(tmp_path_factory), tmp_path_factory.mktemp("workbench-http")
    ) as platform:
        yield platform


@pytest.fixture(scope="module")
def url(platform: Platform) -> Iterator[str]:
    with workbench(platform) as url:
        yield url


def _log(platform: Platform) -> str:
    path = audit.log_path(platform.paths)
    return path.read_text() if path.exists() else ""


def _post(client: requests.Session, url: str, path: str, data: dict) -> requests.Response:
    return client.post(f"{url}{path}", data=data, allow_redirects=False)


def test_without_a_session_pages_send_to_the_login_and_posts_are_refused(platform, url):
    before = _log(platform)
    for page in ("/", f"/datamangd/{AID}", "/logg", "/datadokumentation/socialtjanst/index.html"):
        answer = requests.get(f"{url}{page}", allow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login"), page
    anonymous = requests.Session()
    token = csrf(anonymous.get(f"{url}/login").text)  # a session, but nobody logged in
    for client, data in ((requests.Session(), {}), (anonymous, {"csrf": token})):
        form = data | {"andamal": "tidiga_insatser", "slutdatum": LATER}
        assert _post(client, url, f"/datamangd/{AID}/godkann", form).status_code == 403
        assert _post(client, url, f"/datamangd/{AID}/aterkalla", data | {"skal": "x"}).status_code == 403
    assert _log(platform) == before


def test_a_wrong_password_logs_nobody_in(platform, url):
    client = requests.Session()
    token = csrf(client.get(f"{url}/login").text)
    user, _ = platform.password(SCHOOL)
    answer = _post(client, url, "/login", {"csrf": token, "anvandare": user, "losenord": "gissning"})
    assert answer.status_code == 401 and "Fel användarnamn eller lösenord" in answer.text
    assert client.get(f"{url}/", allow_redirects=False).status_code == 303
    other_steward = platform.password(REGISTRAR)[1]
    answer = _post(client, url, "/login", {"csrf": token, "anvandare": user, "losenord": other_steward})
    assert answer.status_code == 401, "another steward's password opens no account but theirs"


def test_the_credentials_are_generated_private_and_outside_the_repository(platform, url):
    credentials = platform.accounts.credentials
    assert credentials.stat().st_mode & 0o777 == 0o600
    accounts = platform.accounts.read()
    assert {a["steward"] for a in accounts.values()} >= {REGISTRAR, SCHOOL, AID_STEWARD}
    assert len({a["password"] for a in accounts.values()}) == len(accounts), "one password each"
    assert not credentials.is_relative_to(Path(__file__).resolve().parents[1])


def test_a_steward_sees_only_the_datasets_they_steward(platform, url):
    client = log_in(url, platform, SCHOOL)
    listed = states(client.get(f"{url}/").text)
    assert set(listed) == {"skola.inskrivning", "skola.franvaro", "skola.meritvarde"}
    assert client.get(f"{url}/datamangd/{ENROLMENT}").status_code == 200
    for other in (AID, REGISTER):
        answer = client.get(f"{url}/datamangd/{other}")
        assert answer.status_code == 403 and "förvaltas av någon annan" in answer.text
    assert client.get(f"{url}/datamangd/skola.finns_inte").status_code == 404
    audit_page = client.get(f"{url}/logg").text
    assert AID not in audit_page and REGISTER not in audit_page


def test_a_forged_post_for_another_stewards_dataset_is_refused_and_records_nothing(platform, url):
    school = log_in(url, platform, SCHOOL)
    token = csrf(school.get(f"{url}/").text)  # the school steward's own, valid token
    before = _log(platform)
    approve = {"csrf": token, "andamal": "tidiga_insatser", "slutdatum": LATER}
    assert _post(school, url, f"/datamangd/{AID}/godkann", approve).status_code == 403
    assert (
        _post(school, url, f"/datamangd/{REGISTER}/aterkalla", {"csrf": token, "skal": "x"}).status_code
        == 403
    )
    # Path tricks on the action URL: the dataset is the one named, resolved on the server.
    for path in (f"/datamangd/{ENROLMENT}/../{AID}/godkann", f"/datamangd/{ENROLMENT}%2f..%2f{AID}/godkann"):
        assert _post(school, url, path, approve).status_code in (403, 404), path
    assert _log(platform) == before


def test_a_post_without_its_sessions_csrf_token_is_refused(platform, url):
    school, registrar = log_in(url, platform, SCHOOL), log_in(url, platform, REGISTRAR)
    theirs = csrf(registrar.get(f"{url}/").text)
    before = _log(platform)
    form = {"andamal": "uppfoljning", "slutdatum": LATER}
    purpose = re.search(r'<option value="([^"]+)"', school.get(f"{url}/datamangd/{ENROLMENT}").text).group(1)
    form["andamal"] = purpose
    for token in (None, "", "fel", theirs):  # missing, empty, made up, another session's
        data = form | ({"csrf": token} if token is not None else {})
        answer = _post(school, url, f"/datamangd/{ENROLMENT}/godkann", data)
        assert answer.status_code == 403 and "giltig session" in answer.text, token
    assert _post(school, url, "/logout", {}).status_code == 403, "logging out takes the token too"
    flood = form | {"csrf": csrf(school.get(f"{url}/").text), "anteckning": "x" * 100_000}
    assert _post(school, url, f"/datamangd/{ENROLMENT}/godkann", flood).status_code == 413
    assert _log(platform) == before


def test_an_edited_or_logged_out_cookie_is_no_session(platform, url):
    school = log_in(url, platform, SCHOOL)
    cookie = school.cookies["knutpunkt_workbench"]
    payload, _, mac = cookie.rpartition(".")
    session = json.loads(base64.urlsafe_b64decode(payload))
    registrar_user = platform.password(REGISTRAR)[0]
    forged = base64.urlsafe_b64encode(json.dumps(session | {"user": registrar_user}).encode()).decode()
    answer = requests.get(
        f"{url}/", cookies={"knutpunkt_workbench": f"{forged}.{mac}"}, allow_redirects=False
    )
    assert answer.status_code == 303, "a cookie whose user was changed is no session"

    token = csrf(school.get(f"{url}/").text)
    assert _post(school, url, "/logout", {"csrf": token}).status_code == 303
    replay = requests.get(f"{url}/", cookies={"knutpunkt_workbench": cookie}, allow_redirects=False)
    assert replay.status_code == 303, "the cookie of a logged-out session opens nothing"


def test_data_docs_are_served_only_to_the_units_steward_and_only_from_their_site(platform, url):
    school = log_in(url, platform, SCHOOL)
    own = school.get(f"{url}/datadokumentation/skola/index.html")
    assert own.status_code == 200 and "<html" in own.text.lower()
    listed = re.findall(
        r'href="/datadokumentation/skola/([^"]+)"[^>]*>([^<]+)<',
        school.get(f"{url}/datamangd/{ENROLMENT}").text,
    )
    kinds = sorted(label.split(" ")[0] for _, label in listed)
    assert kinds == ["förväntningar", "validering", "översikt"], "the dataset's own validation and suite"
    assert all(school.get(f"{url}/datadokumentation/skola/{page}").status_code == 200 for page, _ in listed)
    assert school.get(f"{url}/datadokumentation/socialtjanst/index.html").status_code == 403
    secrets = platform.paths.home.parent / "secrets"
    assert any(secrets.rglob("*.key"))
    for trick in (
        "/datadokumentation/skola/..%2f..%2f..%2fstewardship%2faudit.jsonl",
        "/datadokumentation/skola/%2e%2e/%2e%2e/%2e%2e/stewardship/audit.jsonl",
        "/datadokumentation/vendor/..%2fsocialtjanst%2findex.html",
        "/datadokumentation/skola/..%2fsocialtjanst%2findex.html",
        "/datadokumentation/skola/%2fetc%2fpasswd",
        "/datadokumentation/skola/..%2f..%2f..%2f..%2fsecrets%2fpseudonym.key",
    ):
        answer = school.get(f"{url}{trick}", allow_redirects=False)
        assert answer.status_code in (403, 404), trick
        assert "audit" not in answer.text[:200] and "root:" not in answer.text, trick


def test_an_approval_and_a_revocation_through_the_pages_are_signed_and_audited(platform, url):
    registrar = log_in(url, platform, REGISTRAR)
    page = registrar.get(f"{url}/datamangd/{REGISTER}").text
    purpose = re.search(r'<option value="([^"]+)"', page).group(1)
    past = {"csrf": csrf(page), "version": version(page), "andamal": purpose, "slutdatum": "2020-01-01"}
    before = _log(platform)
    refused = _post(registrar, url, f"/datamangd/{REGISTER}/godkann", past)
    assert refused.status_code == 400 and "Slutdatumet har redan passerat" in refused.text
    unknown = _post(
        registrar, url, f"/datamangd/{REGISTER}/godkann", past | {"andamal": "allt", "slutdatum": LATER}
    )
    assert unknown.status_code == 400 and "Ändamålet finns inte" in unknown.text
    assert _log(platform) == before

    done = _post(registrar, url, f"/datamangd/{REGISTER}/godkann", past | {"slutdatum": LATER})
    assert done.status_code == 303
    page = registrar.get(f"{url}{done.headers['location']}").text
    assert 'data-state="approved"' in page and "Godkännandet är registrerat" in page
    entry = audit.verify(platform.paths)[-1]
    assert (entry.action, entry.dataset, entry.actor) == ("approve", REGISTER, REGISTRAR)
    assert entry.signature and entry.details["expires"] == LATER and entry.details["purpose"] == purpose

    data = {"csrf": csrf(page), "skal": "registret byter system"}
    assert _post(registrar, url, f"/datamangd/{REGISTER}/aterkalla", data).status_code == 303
    entry = audit.verify(platform.paths)[-1]
    assert (entry.action, entry.details["reason"]) == ("revoke", "registret byter system")
    assert "registret byter system" in registrar.get(f"{url}/logg").text
    assert "Loggen verifierar:" in registrar.get(f"{url}/logg").text


def test_a_changed_contract_shows_its_diff_and_an_approval_binds_the_version_read(platform, url):
    school = log_in(url, platform, SCHOOL)
    page = school.get(f"{url}/datamangd/skola.franvaro").text
    purpose = re.search(r'<option value="([^"]+)"', page).group(1)
    data = {"csrf": csrf(page), "version": version(page), "andamal": purpose, "slutdatum": LATER}
    assert _post(school, url, "/datamangd/skola.franvaro/godkann", data).status_code == 303
    contract = platform.root / "contracts" / "skola.franvaro.yaml"
    original = contract.read_text()
    try:
        contract.write_text(original.replace("\n  months: ", "\n  months: 1", 1))
        page = school.get(f"{url}/datamangd/skola.franvaro").text
        assert 'data-state="pending"' in page and "kontraktet har ändrats" in page
        diff = re.search(r'<pre class="diff" id="diff">(.*?)</pre>', page, re.S).group(1)
        assert re.search(r'class="del">-\s+months: \d+', diff) and re.search(
            r'class="add">\+\s+months: 1\d+', diff
        )
        before = _log(platform)  # a form read before the edit approves nothing
        stale = _post(school, url, "/datamangd/skola.franvaro/godkann", data | {"csrf": csrf(page)})
        assert stale.status_code == 400 and "har ändrats sedan sidan visades" in stale.text
        unsaid = {k: v for k, v in data.items() if k != "version"} | {"csrf": csrf(page)}
        assert _post(school, url, "/datamangd/skola.franvaro/godkann", unsaid).status_code == 400
        assert _log(platform) == before
        fresh = data | {"csrf": csrf(page), "version": version(page)}
        assert _post(school, url, "/datamangd/skola.franvaro/godkann", fresh).status_code == 303
        assert "Inga ändringar" in school.get(f"{url}/datamangd/skola.franvaro").text
    finally:
        contract.write_text(original)


def _cli_states(platform: Platform) -> dict[str, str]:
    """``knutpunkt steward list``'s state per dataset (its table's status column)."""
    done = knutpunkt(platform.env | {"COLUMNS": "250"}, "steward", "list")
    assert done.returncode == 0, done.stdout + done.stderr
    found = {}
    for line in done.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 5 and "." in cells[1]:
            found[cells[1]] = cells[4]
    return found


def test_the_cli_and_the_workbench_give_the_same_decisions_on_the_same_log(platform, url):
    school, aid = log_in(url, platform, SCHOOL), log_in(url, platform, AID_STEWARD)
    page = aid.get(f"{url}/datamangd/{AID}").text
    data = {
        "csrf": csrf(page),
        "version": version(page),
        "andamal": "tidiga_insatser",
        "slutdatum": (date.today() + timedelta(days=10)).isoformat(),
    }
    assert _post(aid, url, f"/datamangd/{AID}/godkann", data).status_code == 303  # expiring
    cli = ["steward", "approve", "skola.meritvarde", "--steward", SCHOOL, "--purpose"]
    purpose = re.search(
        r'<option value="([^"]+)"', school.get(f"{url}/datamangd/skola.meritvarde").text
    ).group(1)
    assert knutpunkt(platform.env, *cli, purpose, "--expires", LATER).returncode == 0
    revoke = ["steward", "revoke", "skola.inskrivning", "--steward", SCHOOL, "--reason", "slutar"]
    assert knutpunkt(platform.env, *revoke).returncode == 0

    web = states(school.get(f"{url}/").text) | states(aid.get(f"{url}/").text)
    cli_states = _cli_states(platform)
    assert web == {k: cli_states[k] for k in web}
    assert web[AID] == "expiring" and web["skola.meritvarde"] == "approved" and web[ENROLMENT] == "revoked"

    # The same refusal both ways: an expiry in the past records nothing through either.
    before = _log(platform)
    past = {
        "csrf": csrf(page),
        "version": version(page),
        "andamal": "tidiga_insatser",
        "slutdatum": "2021-06-30",
    }
    assert _post(aid, url, f"/datamangd/{AID}/godkann", past).status_code == 400
    approve = ["steward", "approve", AID, "--steward", AID_STEWARD, "--purpose", "tidiga_insatser"]
    done = knutpunkt(platform.env, *approve, "--expires", "2021-06-30")
    assert done.returncode == 1 and "in the past" in done.stdout
    assert _log(platform) == before


def test_a_log_that_does_not_verify_shows_no_status_and_says_why(platform, url):
    """A log edited by hand: the list shows no approval read from it, the audit page says it does not
    verify, as `steward list` and `audit verify` refuse it; no decision can be added to it."""
    school = log_in(url, platform, SCHOOL)
    assert knutpunkt(platform.env, "steward", "approve", "skola.franvaro", "--steward", SCHOOL, "--purpose",
                     "tidiga_insatser", "--expires", LATER).returncode == 0  # fmt: skip
    log = audit.log_path(platform.paths)
    original = log.read_text()
    try:
        log.write_text(original.replace('"purpose":"tidiga_insatser"', '"purpose":"annat"').replace(
            '"purpose": "tidiga_insatser"', '"purpose": "annat"'))  # fmt: skip
        assert log.read_text() != original
        listed = school.get(f"{url}/").text
        assert 'id="broken"' in listed and states(listed) == {
            k: "unknown" for k in ("skola.franvaro", "skola.inskrivning", "skola.meritvarde")
        }
        assert "Loggen verifierar INTE" in school.get(f"{url}/logg").text
        assert knutpunkt(platform.env, "steward", "list").returncode == 1
        page, tampered = school.get(f"{url}/datamangd/skola.meritvarde").text, log.read_text()
        data = {
            "csrf": csrf(page),
            "version": version(page),
            "andamal": "tidiga_insatser",
            "slutdatum": LATER,
        }
        refused = _post(school, url, "/datamangd/skola.meritvarde/godkann", data)
        assert refused.status_code == 400 and "kunde inte registreras" in refused.text
        assert log.read_text() == tampered, "nothing is appended to a log that does not verify"
    finally:
        log.write_text(original)


def test_no_page_shows_a_personnummer_or_a_pseudonym(platform, url):
    """Every page a steward of the loaded units can open, scanned for the personnummer in landing (every
    form) and for the pseudonyms and linkage tokens in the unit zones and vaults."""
    import duckdb

    from tests.leaks import forms_in_landing
    from warehouse.layout import Warehouse

    pages = []
    for steward in (REGISTRAR, SCHOOL, AID_STEWARD):
        client = log_in(url, platform, steward)
        listed = client.get(f"{url}/").text
        pages += [listed, client.get(f"{url}/logg").text]
        pages += [client.get(f"{url}/datamangd/{key}").text for key in states(listed)]
    text = "\n".join(pages)
    assert "Risk för återidentifiering" in text and "Rader som skulle delas" in text
    forms = forms_in_landing(platform.paths.landing)
    assert forms and not {f for f in forms if f in text}
    wh, keys = Warehouse(platform.paths.warehouse), set()
    for unit in ("folkbokforing", "socialtjanst", "skola"):
        with duckdb.connect(str(wh.vault(unit)), read_only=True) as con:
            keys |= {
                k
                for row in con.execute("SELECT person_pseudonym, link_token FROM link").fetchall()
                for k in row
            }
    assert keys and not {k for k in keys if k in text}
