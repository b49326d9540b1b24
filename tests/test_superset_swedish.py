"""Superset in Swedish: the language pack in ``dashboards/translations`` and what a user sees.

Unit tier: every message in the catalogue is one Superset 6.1 asks to translate (its server catalogue
template, Flask-AppBuilder's, or a ``t()``/``tn()`` call in its front-end bundle), translated, with
its placeholders; it compiles to the gettext catalogue the server reads and the Jed pack the front
end reads. UI tier, on the deployed Superset: the pack is served to anyone (the login page is
Swedish too), and the English control of the browser check: switched to English through Superset's
language menu, the check finds English. The Swedish side of it runs in
``tests/test_dashboards_browser.py``: the admin's and two managers' dashboards show no string of
:data:`dashboards.language.ENGLISH_UI`.
"""

import gettext
import html
import json
import re
import subprocess
from pathlib import Path

import requests
from babel.messages.pofile import read_po

from dashboards import language
from dashboards.home import REPO_ROOT, SUPERSET_VENV
from tests.test_dashboards_browser import artifacts

SITE_PACKAGES = next(SUPERSET_VENV.glob("lib/python3*/site-packages"), Path("/nonexistent"))
PLACEHOLDER = re.compile(r"%(?:\([a-z_]+\))?[sd]")


def _messages(lang: str = "sv") -> list:
    return [m for m in language.catalogue(lang) if m.id]


def _superset_msgids() -> set[str]:
    """Every message Superset 6.1 may ask to translate, from its installed files."""
    ids: set[str] = set()
    for template in (
        SITE_PACKAGES / "superset" / "translations" / "messages.pot",
        SITE_PACKAGES / "flask_appbuilder" / "translations" / "de" / "LC_MESSAGES" / "messages.po",
    ):
        with template.open("rb") as f:
            ids |= {m.id[0] if isinstance(m.id, tuple) else m.id for m in read_po(f) if m.id}
    calls = re.compile(r'\.tn?\)\("((?:[^"\\]|\\.)*)"')  # t("…") and tn("…", …) in the minified bundle
    for bundle in (SITE_PACKAGES / "superset" / "static" / "assets").glob("*.js"):
        ids |= {json.loads(f'"{s}"') for s in calls.findall(bundle.read_text(errors="replace"))}
    return ids


def test_english_finds_whole_phrases_only():
    texts = ["Sök", "Search", "Sök bland 12 rader", "Search 12 records", "filter", "Nästa", "Nextcloud"]
    assert language.english(texts) == ["Search", "Search 12 records"]


def test_the_browser_check_knows_an_error_or_empty_panel_in_swedish():
    """dashboards/browser.py finds failed charts by their text: in Swedish too, or it would pass them."""
    assert language.in_every_language("No results") == ("No results", "Inga resultat")
    assert "Oväntat fel" in language.in_every_language("Data error", "Unexpected error")


def test_every_message_is_one_superset_asks_for_and_is_translated_with_its_placeholders():
    messages = _messages()
    assert len(messages) > 250
    po = (language.SOURCE / "sv" / "LC_MESSAGES" / "messages.po").read_text()
    assert len(re.findall(r"^msgid ", po, re.M)) == len(messages) + 1, "a message is in the file twice"
    known = _superset_msgids()
    assert "Apply filters" in known and "%s record..." in known  # the scan finds t() and tn()
    unknown = [m.id for m in messages if (m.id[0] if isinstance(m.id, tuple) else m.id) not in known]
    assert unknown == [], f"not asked for by Superset 6.1 (a typo, or another version's): {unknown}"
    for m in messages:
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert all(strings) and not m.fuzzy, f"untranslated: {m.id}"
        for source, target in zip((ids[0], ids[-1]), (strings[0], strings[-1]), strict=True):
            assert sorted(PLACEHOLDER.findall(source)) == sorted(PLACEHOLDER.findall(target)), m.id


def test_the_pack_compiles_for_the_server_and_the_front_end(tmp_path):
    assert language.compile_language_packs(tmp_path) == ["sv"]
    folder = tmp_path / "sv" / "LC_MESSAGES"
    server = gettext.GNUTranslations((folder / "messages.mo").open("rb"))
    assert server.gettext("Apply filters") == "Använd filter"
    assert server.ngettext("%s row", "%s rows", 3) == "%s rader"
    front = json.loads((folder / "messages.json").read_text())["locale_data"]["superset"]
    assert front[""]["lang"] == "sv" and front[""]["plural_forms"] == "nplurals=2; plural=(n != 1);"
    assert front["Show %s entries"] == ["Visa %s rader"]
    assert front["%s record..."] == ["%s rad …", "%s rader …"]
    assert len(front) == len(_messages()) + 1
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    language.compile_language_packs(tmp_path)  # every gunicorn worker compiles: unchanged, untouched
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_superset_serves_the_swedish_pack_to_anyone_and_keeps_english_in_the_menu(dashboards_platform):
    url = dashboards_platform["url"]
    pack = requests.get(f"{url}/superset/language_pack/sv/", timeout=30)  # not logged in: the login page
    assert pack.status_code == 200, pack.text[:300]
    assert pack.json()["locale_data"]["superset"]["Apply filters"] == ["Använd filter"]
    login = html.unescape(requests.get(f"{url}/login/", timeout=30).text)
    assert '"locale": "sv"' in login, "Swedish is every user's default"
    assert requests.get(f"{url}/superset/language_pack/../", timeout=30).status_code in (302, 400, 404)
    assert requests.get(f"{url}/lang/en", timeout=30, allow_redirects=False).status_code == 302


def test_the_server_renders_its_menus_from_the_swedish_catalogue(dashboards_platform):
    """The navigation menu is labelled by the server (Flask-Babel, the compiled ``.mo``), not the front end."""
    url, cred = (
        dashboards_platform["url"],
        dashboards_platform["credentials"]["managers"]["Socialförvaltningen"],
    )
    session = requests.Session()
    form = html.unescape(session.get(f"{url}/login/", timeout=30).text)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    assert token, "the login form's CSRF token"
    logged_in = session.post(
        f"{url}/login/", data={"username": cred["username"], "password": cred["password"], "csrf_token": token[1]},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    assert logged_in.status_code == 302 and "/login" not in logged_in.headers["Location"]
    page = session.get(f"{url}/dashboard/list/", timeout=30).text
    labels = {item["name"]: item["label"] for item in _menu(page)}
    assert labels["Dashboards"] == "Översikter" and labels["Charts"] == "Diagram", labels
    session.get(f"{url}/lang/en", timeout=30)
    page = session.get(f"{url}/dashboard/list/", timeout=30).text
    assert {item["name"]: item["label"] for item in _menu(page)}["Dashboards"] == "Dashboards"


def _menu(page: str) -> list[dict]:
    """The navigation menu in a page's bootstrap data (the data-bootstrap attribute's JSON)."""
    bootstrap = re.search(r'data-bootstrap="([^"]*)"', page)
    assert bootstrap, page[:500]
    return json.loads(html.unescape(bootstrap[1]))["common"]["menu_data"]["menu"]


def test_the_english_check_finds_superset_english_when_a_user_picks_english(dashboards_platform):
    """The control for the browser test's Swedish check: the same pages, switched to English through
    Superset's language menu (``/lang/en``), show the English the check looks for."""
    done = subprocess.run(
        [str(SUPERSET_VENV / "bin" / "python"), "-m", "dashboards.browser", "--url", dashboards_platform["url"],
         "--out", str(artifacts() / "english"), "--language", "en"],
        env=dashboards_platform["env"] | {"PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr[-3000:]
    for slug, result in json.loads(done.stdout)["admin"].items():
        found = result["english"]
        assert {"Dashboards", "Download", "Share", "Edit dashboard"} <= set(found), (
            f"{slug}: in English the check should find Superset's English, found {found}"
        )
