"""Superset in Swedish: the language pack kept in ``dashboards/translations`` (runs in .venv-superset).

Superset ships no Swedish. Each language we add is one hand-written catalogue,
``translations/<lang>/LC_MESSAGES/messages.po``, holding the strings a manager meets (dashboards, the
filter bar, tables, chart errors, menus). Superset reads it in two forms, both compiled from that one
file with Babel whenever Superset loads its configuration (``superset_config.py``), into
``$KNUTPUNKT_HOME/superset/translations``, so a compiled copy can never lag behind its source and
nothing compiled is committed:

- ``messages.mo`` for the server (Flask-Babel through ``BABEL_TRANSLATION_DIRECTORIES``): menus, page
  titles and the errors the API answers with;
- ``messages.json`` in Jed's format for the front end, which fetches it from
  ``/superset/language_pack/<lang>/``. Superset's own view of that URL reads only its package folder,
  so :func:`serve_language_packs` answers the URL for our languages first, before any view; it needs
  no login, so the login page is Swedish too (the pack is the public text of the user interface).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SOURCE = Path(__file__).parent / "translations"
DOMAIN = "superset"  # the front end's Jed domain
PACK_URL = re.compile(r"^/superset/language_pack/(?P<lang>[a-z]{2,3}(_[A-Z]{2})?)/$")

# Superset's interface in English, as a manager would meet it on a dashboard: with the pack, none shows
# (the browser check, ``dashboards/browser.py``, reports the ones it finds).
ENGLISH_UI = (
    "Show entries", "Search", "No results were returned for this query", "Filters", "Apply filters",
    "Clear all", "Loading", "Data error", "Edit dashboard", "Download", "View as table", "Share",
    "entries", "Previous", "Next", "Dashboards", "Charts", "Settings", "Refresh dashboard",
    "Force refresh", "View query", "Drill to detail", "Save as", "Enter fullscreen", "records",
    "Select page size", "No results", "Unexpected error", "Filters and controls", "More Options",
    "Export to .CSV", "Export to Excel", "Export to PDF", "Download as Image", "Copy permalink to clipboard",
)  # fmt: skip
_ENGLISH = re.compile(rf"(?<![\w-])({'|'.join(re.escape(p) for p in ENGLISH_UI)})(?![\w-])")


def english(texts: list[str]) -> list[str]:
    """The texts holding a phrase of :data:`ENGLISH_UI` as whole words (case matters: an icon's
    label ``filter`` is not the English word on a button)."""
    return sorted(t for t in texts if _ENGLISH.search(t))


# D3's time locale for Superset's D3_TIME_FORMAT: Swedish weekdays and months on time axes and in dates.
D3_TIME_FORMAT_SV = {
    "dateTime": "%A %e %B %Y kl. %X",
    "date": "%Y-%m-%d",
    "time": "%H:%M:%S",
    "periods": ["fm", "em"],
    "days": ["söndag", "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag"],
    "shortDays": ["sön", "mån", "tis", "ons", "tor", "fre", "lör"],
    "months": ["januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september",
               "oktober", "november", "december"],
    "shortMonths": ["jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"],
}  # fmt: skip


def catalogue(lang: str) -> Catalog:
    """The language's catalogue from ``dashboards/translations``."""
    with (SOURCE / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=lang, abort_invalid=True)


def in_every_language(*english: str) -> tuple[str, ...]:
    """The English texts and their translations in each of our packs: what a check reading the page
    looks for (an error panel's title, say), whichever language the page is in."""
    packs = [
        catalogue(p.name) for p in sorted(SOURCE.iterdir()) if (p / "LC_MESSAGES" / "messages.po").exists()
    ]
    found = (m.string for pack in packs for text in english if (m := pack.get(text)) and m.string)
    return tuple(dict.fromkeys([*english, *found]))


def jed(catalog: Catalog) -> dict[str, Any]:
    """The front end's language pack: Jed's ``locale_data``, as Superset's ``po2json`` writes it.

    A message maps to its translations (one, or one per plural form); untranslated and fuzzy
    messages are left out, so the front end shows Superset's English for them rather than nothing.
    """
    header = {"domain": DOMAIN, "plural_forms": catalog.plural_forms, "lang": str(catalog.locale)}
    messages: dict[str, Any] = {"": header}
    for message in catalog:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not message.id or message.fuzzy or not all(strings):
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        messages[f"{message.context}\x04{key}" if message.context else key] = list(strings)
    return {"domain": DOMAIN, "locale_data": {DOMAIN: messages}}


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically, and only if it changed: every gunicorn worker loads the config."""
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)


def compile_language_packs(target: Path) -> list[str]:
    """Compile every language in ``dashboards/translations`` into ``target``; the languages, sorted."""
    languages = sorted(p.name for p in SOURCE.iterdir() if (p / "LC_MESSAGES" / "messages.po").exists())
    for lang in languages:
        catalog = catalogue(lang)
        folder = target / lang / "LC_MESSAGES"
        mo = io.BytesIO()
        write_mo(mo, catalog)
        _write(folder / "messages.mo", mo.getvalue())
        _write(folder / "messages.json", json.dumps(jed(catalog), ensure_ascii=False).encode())
    return languages


def serve_language_packs(app: Any, folder: Path, languages: list[str]) -> None:
    """Answer ``/superset/language_pack/<lang>/`` from ``folder`` for our languages.

    A request hook, since Superset registers its own views after the config's app mutator runs; any
    other language still reaches Superset's view.
    """
    from flask import request, send_file

    def language_pack() -> Any:
        match = PACK_URL.match(request.path)
        if match and match["lang"] in languages:
            pack = folder / match["lang"] / "LC_MESSAGES" / "messages.json"
            return send_file(pack, mimetype="application/json", max_age=0)
        return None

    app.before_request(language_pack)
