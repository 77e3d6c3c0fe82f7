"""The FastAPI application of ``budgetvakt web``: Swedish pages (plain forms) and ``/api/v1``.

Every route resolves the session first (401 or a redirect to the login page), then the CSRF token
of a write (form field ``csrf_token`` or header ``X-CSRF-Token``, 403), then the node permission
(403), then the input (422 naming the field). The endpoints are plain ``def`` functions: FastAPI
runs them in its thread pool, so the synchronous SQLAlchemy calls never block the event loop.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy
import structlog
from fastapi import Body, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from core.domain import DomainConfig
from core.period import Period, PeriodError
from core.swedish import format_mnkr, format_number_sv
from services.followup import write
from services.followup.errors import Conflict, FollowUpError, InvalidInput, NotFound
from services.followup.models import MEASURE_STATUS_SV
from services.followup.read import (
    adjustment_history,
    approval_history,
    audit_trail,
    comment_history,
    periods_with_snapshots,
    snapshot_versions,
)
from services.followup.users import (
    LoginSession,
    login,
    logout,
    may_approve,
    may_read,
    may_write,
    session_user,
)
from services.web.view import PeriodView, load_period_view

log = structlog.get_logger(__name__)

SESSION_COOKIE = "budgetvakt_session"
LOGIN_CSRF_COOKIE = "budgetvakt_login_csrf"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
NBSP = "\u00a0"
LEVEL_SV = {
    "namnd": "nämnd",
    "forvaltning": "förvaltning",
    "avdelning": "avdelning",
    "enhet": "enhet",
}
ROLE_SV = {
    "enhetschef": "enhetschef",
    "avdelningschef": "avdelningschef",
    "controller": "controller",
    "forvaltningschef": "förvaltningschef",
}
ACTION_SV = {
    "comment": "kommentar",
    "measure_add": "ny åtgärd",
    "measure_update": "ändrad åtgärd",
    "forecast": "förvaltningens prognos",
    "approve": "godkännande",
    "new_version": "ny version",
}


@dataclass(frozen=True)
class WebConfig:
    engine: sqlalchemy.Engine
    domain: DomainConfig
    session_lifetime: timedelta
    secure_cookie: bool = False


class ApiError(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class LoginRequired(Exception):
    pass


def nbsp(text: str) -> str:
    """Spaces inside a number or between a number and its unit never break a line."""
    return text.replace(" ", NBSP)


def mnkr(sek: float | None, signed: bool = False) -> str:
    if sek is None:
        return "–"
    text = format_number_sv(sek / 1e6, 1, signed) if signed else format_mnkr(sek)
    return nbsp(text)


AUDIT_KEYS_SV = {
    "text": "text",
    "comment": "kommentar",
    "comment_by": "kommentar av",
    "full_year_sek": "prognos",
    "adjusted_full_year_sek": "förvaltningens prognos",
    "reason": "motivering",
    "adjustment_reason": "motivering",
    "responsible": "ansvarig",
    "amount_sek": "belopp",
    "status": "status",
    "decided": "beslutad",
    "realised_sek": "realiserat",
    "snapshot_version": "version",
    "approval_comment": "kommentar till godkännandet",
    "reapproval_needed": "ska godkännas igen",
    "approvals_carried_over": "godkännanden som står kvar",
    "measures": "åtgärder",
    "id": "nr",
}


def change_sv(value: Any) -> str:
    """An audit row's before or after as a controller reads it: Swedish keys, amounts in mnkr."""
    if value is None:
        return "–"
    if not isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    parts: list[str] = []
    for key, item in value.items():
        label = AUDIT_KEYS_SV.get(key, key)
        if item is None:
            shown = "–"
        elif key.endswith("_sek") and isinstance(item, int | float):
            shown = f"{mnkr(float(item))}{NBSP}mnkr"
        elif key == "status":
            shown = MEASURE_STATUS_SV.get(str(item), str(item))
        elif key == "measures" and isinstance(item, list):
            shown = str(len(item))
        elif isinstance(item, list):
            shown = ", ".join(str(i) for i in item) or "–"
        else:
            shown = str(item)
        parts.append(f"{label}: {shown}")
    return "; ".join(parts)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters["mnkr"] = mnkr
    env.filters["nbsp"] = nbsp
    env.filters["status_sv"] = lambda s: MEASURE_STATUS_SV.get(s, s)
    env.filters["level_sv"] = lambda s: LEVEL_SV.get(s, s)
    env.filters["role_sv"] = lambda s: ROLE_SV.get(s, s)
    env.filters["action_sv"] = lambda s: ACTION_SV.get(s, s)
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M") + NBSP + "UTC"
    env.filters["change_sv"] = change_sv
    env.filters["neg"] = lambda v: v is not None and round(v / 1e5) < 0
    return templates


def _period(text: str) -> str:
    try:
        return str(Period.parse_exact(text))
    except PeriodError:
        raise ApiError(422, f"period {text!r} is not YYYY-MM", "period") from None


def create_app(config: WebConfig) -> FastAPI:
    app = FastAPI(title="budgetvakt", docs_url=None, redoc_url=None, openapi_url=None)
    templates = _templates()
    engine, domain, org = config.engine, config.domain, config.domain.org

    # --- errors ---------------------------------------------------------------------------

    @app.exception_handler(ApiError)
    def _api_error(_request: Request, err: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"detail": err.detail}
        if err.field is not None:
            body["field"] = err.field
        return JSONResponse(body, status_code=err.status)

    @app.exception_handler(PageError)
    def _page_error(request: Request, err: PageError) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            "error.html",
            {"status": err.status, "message": err.message, "session": _session(request)},
            status_code=err.status,
        )

    @app.exception_handler(LoginRequired)
    def _login_required(request: Request, _err: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        log.info(
            "http_request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    # --- sessions -------------------------------------------------------------------------

    def _session(request: Request) -> LoginSession | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        return session_user(engine, token) if token else None

    def _set_cookie(response: Response, value: str, max_age: int) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=max_age,
            httponly=True,
            samesite="lax",
            secure=config.secure_cookie,
            path="/",
        )

    def api_session(request: Request) -> LoginSession:
        session = _session(request)
        if session is None:
            raise ApiError(401, "not logged in (POST /api/v1/login)")
        return session

    def api_write_session(request: Request) -> LoginSession:
        session = api_session(request)
        header = request.headers.get("X-CSRF-Token", "")
        if not header or not secrets.compare_digest(header, session.csrf_token):
            raise ApiError(403, "missing or wrong X-CSRF-Token header")
        return session

    def page_session(request: Request) -> LoginSession:
        session = _session(request)
        if session is None:
            raise LoginRequired()
        return session

    def _check_form_csrf(session: LoginSession, token: str) -> None:
        if not token or not secrets.compare_digest(token, session.csrf_token):
            raise PageError(403, "Formuläret saknar giltig CSRF-token. Ladda om sidan.")

    # --- permission and lookup ------------------------------------------------------------

    def _view(period: str, namnd: str, version: int | None = None) -> PeriodView:
        """The nämnd's view of the period (a node's nämnd: ``org.owner_of(node)``)."""
        view = load_period_view(engine, domain, period, version, namnd=namnd)
        if view is None:
            raise NotFound(f"no snapshot of {namnd} for the period {period}")
        return view

    def _readable_namnder(session: LoginSession) -> list[str]:
        """The owners (nämnder, omappad) of which the user may read at least the top node."""
        return [o for o in org.owners if o in org.nodes and may_read(org, session.user, o)]

    def _allowed(session: LoginSession, org_unit: str, action: str) -> None:
        if org_unit not in org.nodes:
            raise NotFound(f"the org unit {org_unit} is not in config/org.yaml")
        checks = {"read": may_read, "write": may_write, "approve": may_approve}
        if not checks[action](org, session.user, org_unit):
            log.info(
                "access_refused",
                username=session.user.username,
                role=session.user.role,
                org_unit=org_unit,
                action=action,
            )
            raise PermissionError(
                f"{session.user.username} ({session.user.role} of {session.user.org_unit}) "
                f"may not {action} {org_unit}"
            )

    def _api(call: Any) -> Any:
        """Run a follow-up call, mapping its errors to API errors."""
        try:
            return call()
        except PermissionError as err:
            raise ApiError(403, str(err)) from None
        except InvalidInput as err:
            raise ApiError(422, str(err), err.field) from None
        except NotFound as err:
            raise ApiError(404, str(err)) from None
        except Conflict as err:
            raise ApiError(409, str(err)) from None

    # --- API ------------------------------------------------------------------------------

    @app.post("/api/v1/login")
    def api_login(body: Any = Body(default=None)) -> JSONResponse:
        if not isinstance(body, dict):
            raise ApiError(422, "expected a JSON object {username, password}", "body")
        for field in ("username", "password"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise ApiError(422, f"{field}: is required", field)
        session = login(engine, body["username"], body["password"], config.session_lifetime)
        if session is None:
            raise ApiError(401, "wrong username or password")
        response = JSONResponse(
            {
                "csrf_token": session.csrf_token,
                "username": session.user.username,
                "role": session.user.role,
                "org_unit": session.user.org_unit,
                "expires_at": session.expires_at.isoformat(),
            }
        )
        _set_cookie(response, session.token, int(config.session_lifetime.total_seconds()))
        return response

    @app.post("/api/v1/logout")
    def api_logout(session: LoginSession = Depends(api_write_session)) -> JSONResponse:
        logout(engine, session.token)
        response = JSONResponse({"logged_out": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/api/v1/periods")
    def api_periods(
        session: LoginSession = Depends(api_session), namnd: str | None = None
    ) -> dict[str, Any]:
        """Periods with a snapshot of a nämnd the user may read (or of ``?namnd=``), and per
        nämnd."""
        readable = _readable_namnder(session)
        if namnd is not None:
            if namnd not in readable:
                raise ApiError(404, f"no nämnd {namnd} that {session.user.username} may read")
            readable = [namnd]
        return {
            "periods": periods_with_snapshots(engine, readable),
            "namnder": {o: periods_with_snapshots(engine, [o]) for o in readable},
        }

    @app.get("/api/v1/periods/{period}/nodes/{org_unit}")
    def api_node(
        period: str, org_unit: str, session: LoginSession = Depends(api_session)
    ) -> dict[str, Any]:
        period = _period(period)

        def get() -> dict[str, Any]:
            _allowed(session, org_unit, "read")
            view = _view(period, org.owner_of(org_unit))
            node = view.nodes.get(org_unit)
            if node is None:
                raise NotFound(f"the org unit {org_unit} is not in the snapshot of {period}")
            return node.as_json(period, view.snapshot.version)

        return _api(get)

    def _body(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(422, "expected a JSON object", "body")
        return body

    @app.put("/api/v1/periods/{period}/nodes/{org_unit}/comment")
    def api_comment(
        period: str,
        org_unit: str,
        body: Any = Body(default=None),
        session: LoginSession = Depends(api_write_session),
    ) -> dict[str, Any]:
        period, data = _period(period), _body(body)

        def put() -> None:
            _allowed(session, org_unit, "write")
            write.set_comment(
                engine,
                period=period,
                org_unit=org_unit,
                text=data.get("text"),  # type: ignore[arg-type]  # validated there
                by=session.user.username,
            )

        _api(put)
        return api_node(period, org_unit, session)

    @app.post("/api/v1/periods/{period}/nodes/{org_unit}/measures", status_code=201)
    def api_add_measure(
        period: str,
        org_unit: str,
        body: Any = Body(default=None),
        session: LoginSession = Depends(api_write_session),
    ) -> dict[str, Any]:
        period, data = _period(period), _body(body)

        def post() -> int:
            _allowed(session, org_unit, "write")
            return write.add_measure(
                engine,
                period=period,
                org_unit=org_unit,
                text=data.get("text"),  # type: ignore[arg-type]
                responsible=data.get("responsible"),  # type: ignore[arg-type]
                amount_sek=data.get("amount_sek"),  # type: ignore[arg-type]
                status=data.get("status", "planerad"),
                decided=data.get("decided"),
                realised_sek=data.get("realised_sek"),
                by=session.user.username,
            )

        measure_id = _api(post)
        return {"id": measure_id, **api_node(period, org_unit, session)}

    @app.patch("/api/v1/periods/{period}/nodes/{org_unit}/measures/{measure_id}")
    def api_update_measure(
        period: str,
        org_unit: str,
        measure_id: int,
        body: Any = Body(default=None),
        session: LoginSession = Depends(api_write_session),
    ) -> dict[str, Any]:
        period, data = _period(period), _body(body)
        changes = {k: data[k] for k in ("status", "realised_sek", "decided") if k in data}

        def patch() -> None:
            _allowed(session, org_unit, "write")
            write.update_measure(
                engine,
                period=period,
                org_unit=org_unit,
                measure_id=measure_id,
                by=session.user.username,
                **changes,
            )

        _api(patch)
        return api_node(period, org_unit, session)

    @app.put("/api/v1/periods/{period}/nodes/{org_unit}/forecast")
    def api_forecast(
        period: str,
        org_unit: str,
        body: Any = Body(default=None),
        session: LoginSession = Depends(api_write_session),
    ) -> dict[str, Any]:
        period, data = _period(period), _body(body)

        def put() -> None:
            _allowed(session, org_unit, "write")
            write.set_adjustment(
                engine,
                period=period,
                org_unit=org_unit,
                full_year_sek=data.get("full_year_sek"),  # type: ignore[arg-type]
                reason=data.get("reason"),  # type: ignore[arg-type]
                by=session.user.username,
            )

        _api(put)
        return api_node(period, org_unit, session)

    @app.post("/api/v1/periods/{period}/nodes/{org_unit}/approve")
    def api_approve(
        period: str,
        org_unit: str,
        body: Any = Body(default=None),
        session: LoginSession = Depends(api_write_session),
    ) -> dict[str, Any]:
        period = _period(period)
        data = body if isinstance(body, dict) else {}

        def post() -> None:
            _allowed(session, org_unit, "approve")
            write.approve(
                engine,
                period=period,
                org_unit=org_unit,
                by=session.user.username,
                comment=data.get("comment"),
            )

        _api(post)
        return api_node(period, org_unit, session)

    # --- pages ----------------------------------------------------------------------------

    def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Any:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def _page_call(call: Any) -> Any:
        try:
            return call()
        except PermissionError:
            raise PageError(403, "Du har inte behörighet till den här enheten.") from None
        except NotFound as err:
            raise PageError(404, f"Hittades inte: {err}") from None

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> Response:
        token = secrets.token_urlsafe(24)
        response = _page(
            request, "login.html", {"csrf": token, "next": next, "error": None, "session": None}
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookie
        )
        return response

    @app.post("/login", response_class=HTMLResponse)
    def login_form(
        request: Request,
        username: str = Form(""),
        password: str = Form(""),
        csrf_token: str = Form(""),
        next: str = Form("/"),
    ) -> Response:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not csrf_token or not secrets.compare_digest(cookie, csrf_token):
            raise PageError(403, "Inloggningsformuläret har gått ut. Ladda om sidan.")
        session = login(engine, username, password, config.session_lifetime)
        if session is None:
            return _page(
                request,
                "login.html",
                {
                    "csrf": cookie,
                    "next": next,
                    "error": "Fel användarnamn eller lösenord.",
                    "session": None,
                },
                status=401,
            )
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        _set_cookie(response, session.token, int(config.session_lifetime.total_seconds()))
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    def logout_form(
        csrf_token: str = Form(""), session: LoginSession = Depends(page_session)
    ) -> Response:
        _check_form_csrf(session, csrf_token)
        logout(engine, session.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    def periods_page(request: Request, session: LoginSession = Depends(page_session)) -> Any:
        return _page(
            request,
            "periods.html",
            {
                "session": session,
                "periods": periods_with_snapshots(engine, _readable_namnder(session)),
            },
        )

    @app.get("/perioder/{period}", response_class=HTMLResponse)
    def period_page(
        request: Request, period: str, session: LoginSession = Depends(page_session)
    ) -> Any:
        def render() -> Any:
            period_key = _page_period(period)
            sections = []
            for owner in _readable_namnder(session):
                view = load_period_view(engine, domain, period_key, namnd=owner)
                if view is None:
                    continue
                nodes = [n for n in view.nodes.values() if may_read(org, session.user, n.org_unit)]
                sections.append({"view": view, "nodes": nodes})
            if not sections:
                raise NotFound(f"no snapshot for the period {period_key}")
            return _page(
                request,
                "period.html",
                {"session": session, "period": period_key, "sections": sections},
            )

        return _page_call(render)

    def _page_period(text: str) -> str:
        try:
            return str(Period.parse_exact(text))
        except PeriodError:
            raise PageError(404, f"Perioden {text} finns inte (ÅÅÅÅ-MM).") from None

    def _node_page(
        request: Request,
        session: LoginSession,
        period: str,
        org_unit: str,
        error: str | None = None,
        status: int = 200,
    ) -> Any:
        def render() -> Any:
            period_key = _page_period(period)
            _allowed(session, org_unit, "read")
            owner = org.owner_of(org_unit)
            view = _view(period_key, owner)
            node = view.nodes.get(org_unit)
            if node is None:
                raise NotFound(f"{org_unit} finns inte i ögonblicksbilden för {period_key}")
            return _page(
                request,
                "node.html",
                {
                    "session": session,
                    "view": view,
                    "node": node,
                    "path": [
                        view.nodes[u] for u in reversed(org.path(org_unit)) if u in view.nodes
                    ],
                    "children": [
                        view.nodes[c.id] for c in org.children(org_unit) if c.id in view.nodes
                    ],
                    "can_write": may_write(org, session.user, org_unit),
                    "can_approve": may_approve(org, session.user, org_unit),
                    "comments": comment_history(engine, period_key, org_unit),
                    "adjustments": adjustment_history(engine, period_key, org_unit),
                    "approvals": approval_history(engine, period_key, org_unit, namnd=owner),
                    "versions": snapshot_versions(engine, period_key, owner),
                    "audit": audit_trail(engine, period_key, org_unit),
                    "error": error,
                },
                status=status,
            )

        return _page_call(render)

    @app.get("/perioder/{period}/noder/{org_unit}", response_class=HTMLResponse)
    def node_page(
        request: Request, period: str, org_unit: str, session: LoginSession = Depends(page_session)
    ) -> Any:
        return _node_page(request, session, period, org_unit)

    def _form_write(
        request: Request,
        session: LoginSession,
        csrf_token: str,
        period: str,
        org_unit: str,
        action: str,
        call: Any,
    ) -> Any:
        _check_form_csrf(session, csrf_token)
        period_key = _page_period(period)
        try:
            _page_call(lambda: _allowed(session, org_unit, action))
            call(period_key)
        except InvalidInput as err:
            return _node_page(request, session, period, org_unit, error=_field_sv(err), status=422)
        except NotFound as err:
            raise PageError(404, f"Hittades inte: {err}") from None
        except FollowUpError as err:
            return _node_page(request, session, period, org_unit, error=str(err), status=409)
        return RedirectResponse(f"/perioder/{period_key}/noder/{org_unit}", status_code=303)

    @app.post("/perioder/{period}/noder/{org_unit}/kommentar")
    def comment_form(
        request: Request,
        period: str,
        org_unit: str,
        text: str = Form(""),
        csrf_token: str = Form(""),
        session: LoginSession = Depends(page_session),
    ) -> Any:
        return _form_write(
            request,
            session,
            csrf_token,
            period,
            org_unit,
            "write",
            lambda p: write.set_comment(
                engine, period=p, org_unit=org_unit, text=text, by=session.user.username
            ),
        )

    @app.post("/perioder/{period}/noder/{org_unit}/atgarder")
    def measure_form(
        request: Request,
        period: str,
        org_unit: str,
        text: str = Form(""),
        responsible: str = Form(""),
        amount_mnkr: str = Form(""),
        status: str = Form("planerad"),
        decided: str = Form(""),
        csrf_token: str = Form(""),
        session: LoginSession = Depends(page_session),
    ) -> Any:
        def call(p: str) -> None:
            write.add_measure(
                engine,
                period=p,
                org_unit=org_unit,
                text=text,
                responsible=responsible,
                amount_sek=_mnkr_field(amount_mnkr, "amount_sek"),  # type: ignore[arg-type]
                status=status,
                decided=decided or None,
                by=session.user.username,
            )

        return _form_write(request, session, csrf_token, period, org_unit, "write", call)

    @app.post("/perioder/{period}/noder/{org_unit}/atgarder/{measure_id}")
    def measure_update_form(
        request: Request,
        period: str,
        org_unit: str,
        measure_id: int,
        status: str = Form(""),
        realised_mnkr: str = Form(""),
        csrf_token: str = Form(""),
        session: LoginSession = Depends(page_session),
    ) -> Any:
        def call(p: str) -> None:
            write.update_measure(
                engine,
                period=p,
                org_unit=org_unit,
                measure_id=measure_id,
                by=session.user.username,
                status=status or None,
                realised_sek=_mnkr_field(realised_mnkr, "realised_sek"),
            )

        return _form_write(request, session, csrf_token, period, org_unit, "write", call)

    @app.post("/perioder/{period}/noder/{org_unit}/prognos")
    def forecast_form(
        request: Request,
        period: str,
        org_unit: str,
        full_year_mnkr: str = Form(""),
        reason: str = Form(""),
        csrf_token: str = Form(""),
        session: LoginSession = Depends(page_session),
    ) -> Any:
        def call(p: str) -> None:
            write.set_adjustment(
                engine,
                period=p,
                org_unit=org_unit,
                full_year_sek=_mnkr_field(full_year_mnkr, "full_year_sek"),  # type: ignore[arg-type]
                reason=reason,
                by=session.user.username,
            )

        return _form_write(request, session, csrf_token, period, org_unit, "write", call)

    @app.post("/perioder/{period}/noder/{org_unit}/godkann")
    def approve_form(
        request: Request,
        period: str,
        org_unit: str,
        comment: str = Form(""),
        csrf_token: str = Form(""),
        session: LoginSession = Depends(page_session),
    ) -> Any:
        return _form_write(
            request,
            session,
            csrf_token,
            period,
            org_unit,
            "approve",
            lambda p: write.approve(
                engine, period=p, org_unit=org_unit, by=session.user.username, comment=comment
            ),
        )

    return app


FIELD_SV = {
    "text": "Text",
    "responsible": "Ansvarig",
    "amount_sek": "Belopp",
    "status": "Status",
    "decided": "Beslutsdatum",
    "realised_sek": "Realiserat belopp",
    "full_year_sek": "Prognos helår",
    "reason": "Motivering",
    "org_unit": "Enhet",
    "comment": "Kommentar",
}


def _field_sv(err: InvalidInput) -> str:
    if err.field == "reason":
        return "Motivering krävs för att justera prognosen."
    return f"{FIELD_SV.get(err.field, err.field)}: {err.problem}"


def _mnkr_field(text: str, field: str) -> float | None:
    """A form's amount in mnkr (Swedish or English notation) → SEK; empty → None."""
    from core.swedish import parse_number_sv

    if not text.strip():
        return None
    try:
        return parse_number_sv(text) * 1e6
    except ValueError:
        raise InvalidInput(field, f"{text!r} är inte ett tal (mnkr, t.ex. 12,5)") from None
