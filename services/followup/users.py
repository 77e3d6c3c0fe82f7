"""Users of ``budgetvakt web`` and their sessions; who may do what on which org node.

Passwords are stored only as argon2id hashes (``argon2-cffi``): argon2id won the Password Hashing
Competition, is OWASP's first recommendation, and is memory-hard, so a stolen table costs an
attacker memory as well as time per guess; bcrypt would do but truncates at 72 bytes and is not
memory-hard. No OIDC: the demo municipality has no identity provider to test against; the
session layer (:mod:`services.web.auth`) is where one would plug in.

Sessions are server-side rows: the cookie holds a random token, the table only its SHA-256, so
a copy of the database opens no session; a session expires (``BUDGETVAKT_UI_SESSION_MINUTES``)
and logging out deletes it. Each session has its own CSRF token.

Roles, each tied to one node of ``config/org.yaml`` (or several: a controller of a whole kommun
is given its nämnder, ``--node SN --node VON``, stored comma-separated); a user's *scope* is
those nodes' subtrees, and *their nämnder* the nämnder those nodes are in:

=================  ====================================  ==============================
role               reads                                 writes (comment, åtgärd, prognos)
=================  ====================================  ==============================
enhetschef         the scope and the nodes above it      the scope (their enhet)
avdelningschef     the scope and the nodes above it      the scope (avdelning + enheter)
controller         their nämnder, and omappad            the scope; approves in the scope
forvaltningschef   their nämnder, and omappad            nothing
=================  ====================================  ==============================

No one reads another nämnd's nodes (a one-nämnd deployment: everything, as before).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.errors import UserError
from core.hierarchy import UNMAPPED_ID, OrgTree
from services.followup.models import ROLES, AuditRecord, SessionRecord, UserRecord
from services.followup.read import utc
from services.snapshots.engine import write_connection
from services.snapshots.migrate import ensure_at_head

log = structlog.get_logger(__name__)

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD_LENGTH = 10
_HASHER = PasswordHasher()
# Verified against when the user does not exist, so that a wrong name takes as long as a wrong
# password (no user enumeration by timing).
_DUMMY_HASH = _HASHER.hash("budgetvakt-no-such-user")


@dataclass(frozen=True)
class User:
    username: str
    role: str
    org_unit: str  # one node id, or several comma-separated
    created_at: datetime

    @property
    def nodes(self) -> tuple[str, ...]:
        """The user's nodes (one, or a kommun controller's several)."""
        return tuple(n for n in self.org_unit.split(",") if n)


@dataclass(frozen=True)
class LoginSession:
    token: str  # only in the cookie; the table holds its hash
    csrf_token: str
    user: User
    expires_at: datetime


def _user(record: UserRecord) -> User:
    return User(record.username, record.role, record.org_unit, utc(record.created_at))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"--role {role!r}: choose one of {', '.join(ROLES)}")


NODES_MAX_LENGTH = 512


def add_user(
    engine: sqlalchemy.Engine,
    org: OrgTree,
    *,
    username: str,
    role: str,
    node: str | Sequence[str],
    password: str,
) -> User:
    """Add a user tied to ``node`` (one id, or several: a kommun controller's nämnder)."""
    if not USERNAME.match(username):
        raise UserError(
            f"username {username!r}: use 1-64 lower-case letters, digits, '.', '_' or '-'"
        )
    check_role(role)
    nodes = [node] if isinstance(node, str) else list(node)
    if not nodes:
        raise UserError("give the user's node: --node ID (repeat it for several)")
    for one in nodes:
        if not org.is_known(one):
            known = ", ".join(sorted(org.nodes)[:12])
            raise UserError(f"--node {one!r} is not a node of config/org.yaml (e.g. {known})")
    node = ",".join(dict.fromkeys(nodes))
    if len(node) > NODES_MAX_LENGTH:
        raise UserError(f"--node: at most {NODES_MAX_LENGTH} characters of node ids in all")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    ensure_at_head(engine)
    record = UserRecord(
        username=username,
        password_hash=_HASHER.hash(password),
        role=role,
        org_unit=node,
        created_at=datetime.now(UTC),
    )
    with write_connection(engine) as connection, Session(bind=connection) as session:
        if session.scalar(select(UserRecord).where(UserRecord.username == username)):
            raise UserError(f"the user {username} exists already (remove it first)")
        session.add(record)
        session.add(
            AuditRecord(
                at=record.created_at,
                username="(cli)",
                action="user_add",
                period=None,
                org_unit=node if len(nodes) == 1 else None,
                before=None,
                after={"username": username, "role": role, "org_unit": node},
            )
        )
        session.flush()
        user = _user(record)
    log.info("user_added", username=username, role=role, org_unit=node)
    return user


def list_users(engine: sqlalchemy.Engine) -> list[User]:
    ensure_at_head(engine)
    with Session(engine) as session:
        return [_user(r) for r in session.scalars(select(UserRecord).order_by(UserRecord.username))]


def remove_user(engine: sqlalchemy.Engine, username: str) -> None:
    ensure_at_head(engine)
    with write_connection(engine) as connection, Session(bind=connection) as session:
        record = session.scalar(select(UserRecord).where(UserRecord.username == username))
        if record is None:
            raise UserError(f"no user {username}")
        before = {"username": username, "role": record.role, "org_unit": record.org_unit}
        session.execute(delete(SessionRecord).where(SessionRecord.username == username))
        session.delete(record)
        session.add(
            AuditRecord(
                at=datetime.now(UTC),
                username="(cli)",
                action="user_remove",
                period=None,
                org_unit=before["org_unit"],
                before=before,
                after=None,
            )
        )
        session.flush()
    log.info("user_removed", username=username)


def login(
    engine: sqlalchemy.Engine, username: str, password: str, lifetime: timedelta
) -> LoginSession | None:
    """A new session for the right password; None otherwise (the caller answers 401)."""
    ensure_at_head(engine)
    with Session(engine) as session:
        record = session.scalar(select(UserRecord).where(UserRecord.username == username))
        stored_hash = record.password_hash if record else _DUMMY_HASH
        user = _user(record) if record else None
    try:
        _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        log.info("login_refused", username=username)
        return None
    if user is None:
        return None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with write_connection(engine) as connection, Session(bind=connection) as session:
        session.execute(delete(SessionRecord).where(SessionRecord.expires_at < now))
        session.add(
            SessionRecord(
                token_hash=_token_hash(token),
                username=user.username,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + lifetime,
            )
        )
        session.flush()
    log.info("login", username=user.username, role=user.role)
    return LoginSession(token, csrf, user, now + lifetime)


def session_user(engine: sqlalchemy.Engine, token: str) -> LoginSession | None:
    """The live session of a cookie's token; None if unknown or expired."""
    if not token:
        return None
    with Session(engine) as session:
        found = session.execute(
            select(SessionRecord, UserRecord)
            .join(UserRecord, UserRecord.username == SessionRecord.username)
            .where(SessionRecord.token_hash == _token_hash(token))
        ).first()
        if found is None:
            return None
        record, user = found
        expires_at = utc(record.expires_at)
        if expires_at <= datetime.now(UTC):
            return None
        return LoginSession(token, record.csrf_token, _user(user), expires_at)


def logout(engine: sqlalchemy.Engine, token: str) -> None:
    with write_connection(engine) as connection:
        connection.execute(
            delete(SessionRecord).where(SessionRecord.token_hash == _token_hash(token))
        )


# --- Who may do what ------------------------------------------------------------------------


def in_scope(org: OrgTree, user: User, node: str) -> bool:
    """The node is one of the user's nodes or below one."""
    if node not in org.nodes:
        return False
    path = org.path(node)
    return any(mine in path for mine in user.nodes)


def user_namnder(org: OrgTree, user: User) -> list[str]:
    """The nämnder the user's nodes are in, in configuration order."""
    mine = {org.owner_of(n) for n in user.nodes if n in org.nodes}
    return [owner for owner in org.owners if owner in mine]


def may_read(org: OrgTree, user: User, node: str) -> bool:
    if node not in org.nodes:
        return False
    if user.role in ("controller", "forvaltningschef"):
        # Their nämnder whole; omappad (unknown cost centres) is every controller's to sort out.
        owner = org.owner_of(node)
        return owner == UNMAPPED_ID or owner in user_namnder(org, user)
    # Chefs see their subtree and the nodes above it (the context of their numbers).
    return in_scope(org, user, node) or any(
        mine in org.nodes and node in org.path(mine) for mine in user.nodes
    )


def may_write(org: OrgTree, user: User, node: str) -> bool:
    if user.role == "forvaltningschef":
        return False
    return in_scope(org, user, node)


def may_approve(org: OrgTree, user: User, node: str) -> bool:
    return user.role == "controller" and in_scope(org, user, node)
