"""What the workbench's pages say, in Swedish, built from what the stewardship functions return.

No rule is decided here: states come from ``stewardship.overview``, reports from
``stewardship.report``, decisions from ``stewardship.approvals``. This module only words them for a
steward, and shows group sizes and counts, never a row or a pseudonym.
"""

from __future__ import annotations

from pipelines.disclosure.policy import RISKY_K
from pipelines.stewardship import audit
from pipelines.stewardship.overview import EXPIRING_DAYS, Overview

STATE = {
    "pending": "väntar på beslut",
    "approved": "godkänd",
    "expiring": f"går ut inom {EXPIRING_DAYS} dagar",
    "expired": "godkännandet har gått ut",
    "revoked": "återkallad",
    "withheld": "hålls tillbaka",
}
LEVEL = {
    "detail": "rader per person (utvalda kolumner)",
    "derived": "härledda indikatorer per person",
    "aggregate": "sammanställning, inga personrader",
}
CLASSIFICATION = {
    "public": "offentlig",
    "internal": "intern",
    "secret": "sekretess",
    "strong_secrecy": "stark sekretess",
}
ACTION = {
    "approve": "godkännande",
    "revoke": "återkallelse",
    "expire": "godkännandet gick ut",
    "publish": "delad i tvärzonen",
    "withdraw": "borttagen ur tvärzonen",
    "export": "export",
    "retention": "gallring",
}
DETAIL = {
    "steward": "förvaltare",
    "purpose": "ändamål",
    "expires": "gäller till",
    "level": "nivå",
    "note": "anteckning",
    "reason": "skäl",
    "rows": "rader",
    "state": "läge",
    "why": "orsak",
    "run_id": "körning",
}
REFUSED = {
    "steward": "Beslutet saknar förvaltarens namn.",
    "purpose": "Ändamålet finns inte i datamängdens kontrakt.",
    "past": "Slutdatumet har redan passerat.",
    "changed": "Kontraktet har ändrats sedan sidan visades. Läs ändringarna och godkänn igen.",
    "output": "Kontraktets utdata kan inte byggas, så grinden skulle vägra den",
    "reason": "Ange ett skäl till återkallelsen.",
    "personnummer": "Texten ser ut att innehålla ett personnummer; sådant får inte stå i granskningsloggen.",
}
RISK = {
    "birth_year": "födelseår",
    "sex": "kön",
    "district": "område",
}


def why(o: Overview) -> str:
    """Why a dataset has its state, in Swedish, from the decision behind it."""
    d = o.status.decision
    who = (d.details.get("steward", d.actor), d.at[:10]) if d else ("", "")
    match o.state:
        case "pending" if d is None:
            text = "ingen förvaltare har beslutat ännu"
        case "pending":
            text = f"kontraktet har ändrats sedan {who[0]} godkände det {who[1]}"
        case "revoked":
            text = f"återkallad av {who[0]} {who[1]}: {d.details.get('reason', '') if d else ''}"
        case "expired":
            text = f"godkänd av {who[0]}, gick ut {o.status.expires}"
        case "withheld" if o.refused is not None:
            text = f"godkänd av {who[0]}, men grinden vägrade kontraktets utdata {o.refused.at[:10]}"
        case "withheld":
            text = f"godkänd av {who[0]}, men varje leverans hålls tillbaka av kvalitetskontrollerna"
        case _:
            text = f"godkänd av {who[0]} {who[1]} till {o.status.expires}"
    return text


def detail_text(entry: audit.Entry) -> str:
    """An audit entry's details as Swedish label: value pairs."""
    return ", ".join(f"{DETAIL.get(k, k)}: {v}" for k, v in entry.details.items() if v not in ("", None))


def risk_rows(risk: dict) -> list[tuple[str, str]]:
    """The k-anonymity figures of ``report.build`` as (label, value) rows."""
    if "note" in risk and len(risk) == 1:
        return [("Anmärkning", "kontraktet anger inga kvasiidentifierare")]
    if "cells_published" in risk:
        return _cell_rows(risk)
    qis = ", ".join(RISK.get(q, q) for q in risk.get("quasi_identifiers", []))
    return [
        ("Kvasiidentifierare", qis),
        ("Område från folkbokföringen", "ja" if risk.get("district_from_register") else "nej"),
        ("Personer", f"{risk.get('persons', 0):,}".replace(",", " ")),
        ("Grupper (ekvivalensklasser)", str(risk.get("classes"))),
        ("Minsta grupp (k)", str(risk.get("k_min"))),
        ("Median k", str(risk.get("k_median"))),
        (f"Grupper med k < {RISKY_K}", str(risk.get(f"classes_k_below_{RISKY_K}"))),
        (f"Personer i grupper med k < {RISKY_K}", str(risk.get(f"persons_in_classes_k_below_{RISKY_K}"))),
        ("Personer som är ensamma i sin grupp", str(risk.get("unique_persons"))),
    ]


def _cell_rows(risk: dict) -> list[tuple[str, str]]:
    rows = [("Celler som delas", str(risk["cells_published"]))]
    if "min_count" in risk:
        rows += [
            ("Minsta tillåtna antal i en cell", str(risk["min_count"])),
            ("Minsta delade cell", str(risk["smallest_published_cell"])),
            ("Celler som undertrycks", str(risk["cells_suppressed"])),
        ]
    else:
        rows.append(("Anmärkning", "inga personuppgifter: ingen röjandekontroll behövs"))
    return rows


def risky_combinations(risk: dict) -> list[dict]:
    """Which combinations of quasi-identifiers single persons out, with Swedish names."""
    return [
        {**c, "names": " + ".join(RISK.get(q, q) for q in c["combination"])}
        for c in risk.get("risky_combinations", [])
    ]
