"""The steward workbench: server-rendered Swedish pages over the stewardship functions.

Starlette, Jinja2 and uvicorn come with ``dagster-webserver`` and are in the lock already, so the
workbench adds no dependency; plain HTML forms and one local style sheet, no script, nothing from the
internet. Forms are read with the standard library (``urllib.parse``, Starlette's form parser would
need ``python-multipart``) and sessions are signed by ``sessions`` (Starlette's would need
``itsdangerous``).

A steward sees and acts on the datasets whose contract names them as steward, nothing else: every
dataset page, decision and Data Docs file checks it on the server and answers 403 otherwise. Decisions
go through ``approvals.approve_reviewed`` and ``approvals.revoke``, as ``knutpunkt steward`` does, and
are signed with the steward's key and anchored in Dagster's event log (the ``open_anchors`` handed in).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pipelines.settings import Paths
from pipelines.stewardship import approvals, audit, overview, report, signing
from pipelines.stewardship.contracts import Contract, ContractError, load_contracts
from pipelines.workbench import views
from pipelines.workbench.accounts import Accounts
from pipelines.workbench.sessions import COOKIE, MAX_AGE, Session, Signer, csrf_ok
from warehouse.layout import Warehouse

HERE = Path(__file__).resolve().parent
OpenAnchors = Callable[[], AbstractContextManager[audit.AnchorStore]]
log = logging.getLogger("knutpunkt.workbench")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# GX's pages run their own (vendored, local) scripts; they may load nothing from anywhere else.
DOCS_HEADERS = PAGE_HEADERS | {
    "Content-Security-Policy": "default-src 'self' 'unsafe-inline' 'unsafe-eval' data:; connect-src 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
}


@dataclass
class Workbench:
    """What every request needs: the platform home, the anchor store, the accounts and templates."""

    paths: Paths
    open_anchors: OpenAnchors
    accounts: Accounts
    signer: Signer
    templates: Environment

    def contracts(self) -> dict[str, Contract]:
        return load_contracts()

    def mine(self, steward: str) -> dict[str, Contract]:
        """The datasets whose contract names this steward: the only ones they see or decide on."""
        return {k: c for k, c in self.contracts().items() if c.steward == steward}

    def render(self, name: str, session: Session, status: int = 200, **context) -> HTMLResponse:
        steward = self.accounts.steward_of(session.user) if session.user else None
        html = self.templates.get_template(name).render(session=session, steward=steward, v=views, **context)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def create_app(paths: Paths, open_anchors: OpenAnchors, accounts: Accounts) -> Starlette:
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    wb = Workbench(paths, open_anchors, accounts, Signer(accounts.session_key()), templates)
    routes = [
        Route("/", _handler(wb, list_page)),
        Route("/login", _handler(wb, login_page, public=True)),
        Route("/login", _handler(wb, login, public=True), methods=["POST"]),
        Route("/logout", _handler(wb, logout), methods=["POST"]),
        Route("/logg", _handler(wb, audit_page)),
        Route("/datamangd/{key}", _handler(wb, dataset_page)),
        Route("/datamangd/{key}/godkann", _handler(wb, approve), methods=["POST"]),
        Route("/datamangd/{key}/aterkalla", _handler(wb, revoke), methods=["POST"]),
        Route("/datadokumentation/{unit}/{path:path}", _handler(wb, data_docs)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: partial(_http_error, wb)})


async def _http_error(wb: Workbench, request: Request, exc: HTTPException) -> Response:
    """403 and 404 as a Swedish page."""
    return _refusal(wb, exc.detail, exc.status_code)


Form = dict[str, str]
Handler = Callable[..., object]
MAX_FORM = 64 * 1024  # a form here is a few fields: a larger body is refused unread


def _handler(wb: Workbench, page: Handler, public: bool = False) -> Callable:
    """Wrap a page: read the session and the form; a page behind the login redirects (GET) or refuses
    (POST, 403) without a valid session, and every POST without its session's CSRF token is refused."""

    async def endpoint(request: Request) -> Response:
        session = wb.signer.load(request.cookies.get(COOKIE))
        form: dict[str, str] = {}
        if request.method == "POST":
            if int(request.headers.get("content-length") or MAX_FORM + 1) > MAX_FORM:
                return _refusal(wb, "Formuläret är för stort eller saknar längd.", 413)
            body = (await request.body()).decode("utf-8", "replace")
            form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            if not csrf_ok(session, form.get("csrf")):
                log.warning("refused POST %s: no session or a wrong CSRF token", request.url.path)
                return _refusal(wb, "Formuläret saknar en giltig session. Ladda om sidan och försök igen.")
        steward = wb.accounts.steward_of(session.user) if session and session.user else None
        if not public and steward is None:
            if request.method == "POST":
                return _refusal(wb, "Du är inte inloggad.")
            return RedirectResponse("/login", status_code=303)
        session = session or Session.new()
        response = await page(wb, request, session, steward, form)
        if "set-cookie" not in response.headers:  # login and logout set their own
            _keep(response, wb.signer.dump(session))
        return response

    return endpoint


def _refusal(wb: Workbench, message: str, status: int = 403) -> HTMLResponse:
    html = wb.templates.get_template("refused.html").render(message=message, session=None, steward=None)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _mine_or_403(wb: Workbench, steward: str, key: str) -> Contract:
    """The contract of a dataset this steward stewards; 404 for no such dataset, 403 for another's."""
    contracts = wb.contracts()
    if key not in contracts:
        raise HTTPException(404, "Ingen sådan datamängd.")
    if contracts[key].steward != steward:
        log.warning("refused %s on %s: stewarded by %s", steward, key, contracts[key].steward)
        raise HTTPException(403, "Datamängden förvaltas av någon annan.")
    return contracts[key]


async def login_page(
    wb: Workbench, request: Request, session: Session, steward: str | None, form: Form
) -> Response:
    return wb.render("login.html", session, error=None)


async def login(
    wb: Workbench, request: Request, session: Session, steward: str | None, form: Form
) -> Response:
    user = form.get("anvandare", "").strip()
    who = wb.accounts.steward(user, form.get("losenord", ""))
    if who is None:
        log.warning("failed login as %r", user)
        await asyncio.sleep(1)  # slows guessing down
        return wb.render("login.html", session, status=401, error="Fel användarnamn eller lösenord.")
    log.info("%s logged in", who)
    wb.signer.ended.add(session.sid)  # a new session id and CSRF token: a planted cookie is worth nothing
    response = RedirectResponse("/", status_code=303)
    _keep(response, wb.signer.dump(Session.new(user)))
    return response


async def logout(
    wb: Workbench, request: Request, session: Session, steward: str | None, form: Form
) -> Response:
    wb.signer.ended.add(session.sid)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _keep(response: Response, cookie: str) -> None:
    response.set_cookie(COOKIE, cookie, max_age=MAX_AGE, httponly=True, samesite="strict", path="/")


def _states(
    wb: Workbench, contracts: dict[str, Contract]
) -> tuple[dict[str, overview.Overview], list, str | None]:
    """States and the verified entries; on a log that does not verify, none and why (as the CLI)."""
    try:
        with wb.open_anchors() as anchors:
            entries = audit.verify_anchored(anchors, wb.paths)
    except audit.AuditError as e:
        return {}, [], str(e)
    return overview.overview(contracts, entries, Warehouse(wb.paths.warehouse)), entries, None


async def list_page(wb: Workbench, request: Request, session: Session, steward: str, form: Form) -> Response:
    """The steward's datasets with their state and why (the log verified first, as ``steward list``)."""
    mine = wb.mine(steward)
    states, _, broken = await run_in_threadpool(_states, wb, mine)
    return wb.render("list.html", session, contracts=mine, states=states, broken=broken)


def _dataset_context(wb: Workbench, contract: Contract) -> dict:
    """Everything the dataset page shows: state, what is shared, report, changes, recent decisions."""
    states, entries, broken = _states(wb, {contract.key: contract})
    wh = Warehouse(wb.paths.warehouse)
    built = report.build(contract, wh)
    site = wb.paths.data_docs / contract.unit
    return {
        "c": contract,
        "o": states.get(contract.key),
        "broken": broken,
        "r": built,
        "changes": approvals.changes_since_approval(contract, entries, wb.paths) if not broken else None,
        "ever_approved": approvals.last_approval(contract, entries) is not None,
        "docs": _docs(site, contract),
        "held": overview.held_deliveries(wh, contract.unit)[0],
        "default_expiry": (date.today() + timedelta(days=365)).isoformat(),
        "today": date.today().isoformat(),
    }


def _docs(site: Path, contract: Contract) -> list[tuple[str, str]]:
    """Links into the unit's Data Docs for this dataset: the index, its latest validation and its
    expectation suite."""
    if not (site / "index.html").is_file():
        return []
    validations = sorted((site / "validations" / contract.unit / contract.dataset).rglob("*.html"))
    suite = site / "expectations" / contract.unit / f"{contract.dataset}.html"
    links = [("översikt", site / "index.html")]
    links += [(f"validering ({page.parts[-3].removeprefix('delivery-')})", page) for page in validations]
    links += [("förväntningar", suite)] if suite.is_file() else []
    return [(label, page.relative_to(site).as_posix()) for label, page in links]


async def dataset_page(
    wb: Workbench, request: Request, session: Session, steward: str, form: Form, **extra
) -> Response:
    contract = _mine_or_403(wb, steward, request.path_params["key"])
    context = await run_in_threadpool(_dataset_context, wb, contract)
    context |= {"done": request.query_params.get("beslut"), "error": None, "form": extra.pop("filled", {})}
    context |= extra
    return wb.render("dataset.html", session, status=400 if context["error"] else 200, **context)


async def approve(wb: Workbench, request: Request, session: Session, steward: str, form: Form) -> Response:
    """Approve the contract version on the page, signed as the logged-in steward (never a name the
    form could carry), with the checks of ``knutpunkt steward approve``."""
    contract = _mine_or_403(wb, steward, request.path_params["key"])
    try:
        expires = date.fromisoformat(form.get("slutdatum", ""))
    except ValueError:
        return await _refused_decision(wb, request, session, steward, form, "Ange slutdatum som ÅÅÅÅ-MM-DD.")

    def decide() -> audit.Entry:
        with wb.open_anchors() as anchors:
            return approvals.approve_reviewed(
                contract, steward, form.get("andamal", ""), expires, form.get("anteckning", ""),
                wb.paths, anchors=anchors, seen_version=form.get("version", ""),
            )  # fmt: skip

    return await _decision(wb, request, session, steward, form, decide, "godkand")


async def revoke(wb: Workbench, request: Request, session: Session, steward: str, form: Form) -> Response:
    """Revoke, signed as the logged-in steward; the next link run withdraws the dataset."""
    contract = _mine_or_403(wb, steward, request.path_params["key"])

    def decide() -> audit.Entry:
        with wb.open_anchors() as anchors:
            return approvals.revoke(contract, steward, form.get("skal", ""), wb.paths, anchors=anchors)

    return await _decision(wb, request, session, steward, form, decide, "aterkallad")


async def _decision(
    wb: Workbench,
    request: Request,
    session: Session,
    steward: str,
    form: Form,
    decide: Callable[[], audit.Entry],
    what: str,
) -> Response:
    """Record the decision; on a refused one, the dataset page again with why (400), nothing recorded."""
    try:
        entry = await run_in_threadpool(decide)
    except audit.Refused as e:
        message = views.REFUSED.get(e.code, str(e)) + (f": {e}" if e.code == "output" else "")
        return await _refused_decision(wb, request, session, steward, form, message)
    except (audit.AuditError, signing.SignatureError, ContractError) as e:
        return await _refused_decision(
            wb, request, session, steward, form, f"Beslutet kunde inte registreras: {e}"
        )
    log.info("%s: %s %s (audit entry %s)", steward, entry.action, entry.dataset, entry.seq)
    key = request.path_params["key"]
    return RedirectResponse(f"/datamangd/{key}?beslut={what}-{entry.seq}", status_code=303)


async def _refused_decision(
    wb: Workbench, request: Request, session: Session, steward: str, form: Form, message: str
) -> Response:
    return await dataset_page(wb, request, session, steward, {}, error=message, filled=form)


def _audit_context(wb: Workbench, steward: str) -> dict:
    """The log's entries about this steward's datasets, and whether the whole log verifies."""
    mine = set(wb.mine(steward))
    try:
        with wb.open_anchors() as anchors:
            entries = audit.verify_anchored(anchors, wb.paths)
            anchored = len(anchors.heads())
        verdict, ok = f"Loggen verifierar: {len(entries)} poster, {anchored} huvuden i Dagster stämmer.", True
    except audit.AuditError as e:
        entries, verdict, ok = audit.read(wb.paths), f"Loggen verifierar INTE: {e}", False
    return {"entries": [e for e in reversed(entries) if e.dataset in mine], "verdict": verdict, "ok": ok}


async def audit_page(wb: Workbench, request: Request, session: Session, steward: str, form: Form) -> Response:
    context = await run_in_threadpool(_audit_context, wb, steward)
    return wb.render("audit.html", session, **context)


async def data_docs(wb: Workbench, request: Request, session: Session, steward: str, form: Form) -> Response:
    """A file of a unit's Data Docs site (or the shared vendored assets), for a steward of that unit."""
    unit, path = request.path_params["unit"], request.path_params["path"]
    if unit != "vendor" and unit not in {c.unit for c in wb.mine(steward).values()}:
        raise HTTPException(403, "Enheten förvaltas av någon annan.")
    root = (wb.paths.data_docs / unit).resolve()
    file = (root / path).resolve()
    if not file.is_relative_to(root) or not file.is_file():
        raise HTTPException(404, "Ingen sådan sida.")
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return FileResponse(file, media_type=kind, headers=DOCS_HEADERS)


def serve(paths: Paths, open_anchors: OpenAnchors, host: str, port: int) -> None:
    """Give every steward a signing key and a generated password, then serve until stopped.

    The stewards are those the contracts name: each gets a key pair (``signing.create_key``, which
    registers them) and an account; existing keys and passwords are kept.
    """
    import uvicorn

    stewards = {c.steward for c in load_contracts().values()}
    for steward in stewards:
        signing.create_key(steward)
    accounts = Accounts.from_env()
    accounts.ensure(stewards)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.info("steward workbench on http://%s:%s; passwords in %s (0600)", host, port, accounts.credentials)
    uvicorn.run(create_app(paths, open_anchors, accounts), host=host, port=port, log_level="warning")
