"""Users of the operations console and the merchant portal: passwords,
TOTP second factor, lockout and server-side sessions.

* Roles: ``admin``, ``support`` (read-only), ``finance`` are operators (the
  console, ``/console/``); ``merchant`` users belong to one merchant and see
  only it (the portal, ``/portal/``). What each role may do is
  :data:`RIGHTS`, checked on the server for every page and action.
* Passwords are argon2id (argon2-cffi's defaults, RFC 9106's second
  recommended profile); a hash made with older parameters is replaced at
  the next successful login.
* Operators have a TOTP key (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits),
  sealed at rest under the master key like merchants' secrets. A code is
  accepted for the step before and after the current one, and each step
  once only (``totp_last_step``), so an observed code cannot be replayed.
* ``max_failures`` wrong passwords or codes in a row lock the account for
  ``lockout_seconds``; while locked even the right password is refused.
* Sessions live in Postgres (``console_sessions``): the cookie carries a
  random token, the table its SHA-256, so a read of the table logs no one in.
  A session ends after ``idle_timeout`` without a request and
  ``absolute_timeout`` after login, and with the user's password change,
  TOTP reset or disabling.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import argon2
import asyncpg

from paycore.merchants.auth import MERCHANT_RE, SecretBox

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
OPERATOR_ROLES = ("admin", "support", "finance")
ROLES = OPERATOR_ROLES + ("merchant",)
MIN_PASSWORD = 10

ALL_OPS = frozenset(OPERATOR_ROLES)
#: right → roles that have it. Merchant users act on their own merchant only (the pages scope every query).
RIGHTS: dict[str, frozenset[str]] = {
    "session": frozenset(ROLES),          # what every logged-in user may do: log out
    "overview": ALL_OPS,
    "payments.read": ALL_OPS | {"merchant"},
    "payments.export": ALL_OPS | {"merchant"},
    "payments.refund": frozenset({"admin", "finance", "merchant"}),
    "payments.cancel": frozenset({"admin", "finance"}),
    "attention.read": ALL_OPS,
    "attention.resolve": frozenset({"admin", "finance"}),
    "reconciliation.read": ALL_OPS,
    "reconciliation.run": frozenset({"admin", "finance"}),
    "merchants.read": ALL_OPS,
    "merchants.write": frozenset({"admin"}),
    "codes.read": ALL_OPS | {"merchant"},
    "codes.write": frozenset({"admin"}),
    "webhooks.read": ALL_OPS | {"merchant"},
    "webhooks.replay": frozenset({"admin"}),
    "channels.read": ALL_OPS,
    "audit.read": ALL_OPS,
    "users.read": frozenset({"admin"}),
    "users.write": frozenset({"admin"}),
    "statements.read": frozenset({"merchant", "admin", "finance"}),
    "credentials.rotate": frozenset({"merchant"}),
    "endpoint.write": frozenset({"merchant"}),   # the merchant's default webhook endpoint
}

_hasher = argon2.PasswordHasher()   # argon2id; immutable parameters, safe to share


def allowed(role: str, right: str) -> bool:
    return role in RIGHTS[right]


# ---------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD or len(password) > 256:
        raise ValueError(f"a password is {MIN_PASSWORD} to 256 characters")


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


# a hash to verify against when the username is unknown: the answer takes as long as for a real user
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


# --------------------------------------------------------------------- TOTP
STEP = 30
DIGITS = 6


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226 HOTP: HMAC of the 8-byte counter, dynamically truncated."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return f"{code:0{digits}d}"


def totp(key: bytes, at: float, digits: int = DIGITS, digest: str = "sha1", step: int = STEP) -> str:
    """RFC 6238 TOTP at unix time ``at``."""
    return hotp(key, int(at // step), digits, digest)


def totp_step(key: bytes, code: str, at: float, window: int = 1) -> int | None:
    """The time step whose code ``code`` is (within ±``window`` steps of ``at``), else None."""
    if not re.fullmatch(r"[0-9]{6}", code or ""):
        return None
    now_step = int(at // STEP)
    for s in range(now_step - window, now_step + window + 1):
        if hmac.compare_digest(hotp(key, s), code):
            return s
    return None


def new_totp_key() -> bytes:
    return secrets.token_bytes(20)   # 160 bits, RFC 4226's recommendation


def totp_uri(username: str, key: bytes, issuer: str = "paycore") -> str:
    """What an authenticator app scans (the Key Uri Format of Google Authenticator)."""
    b32 = base64.b32encode(key).decode().rstrip("=")
    return (f"otpauth://totp/{quote(issuer)}:{quote(username)}?secret={b32}&issuer={quote(issuer)}"
            f"&algorithm=SHA1&digits={DIGITS}&period={STEP}")


def _totp_ad(username: str) -> str:
    return f"console-user:{username}"   # ':' is never in a merchant id: no ciphertext moves between the two


# -------------------------------------------------------------------- users
@dataclass(slots=True)
class User:
    id: int
    username: str
    role: str
    merchant_id: str | None
    status: str

    @property
    def operator(self) -> bool:
        return self.role in OPERATOR_ROLES

    def can(self, right: str) -> bool:
        return allowed(self.role, right)

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "merchant_id": self.merchant_id, "status": self.status}


_USER_COLS = "id, username, role, merchant_id, status"


async def add_user(conn: Any, box: SecretBox, username: str, role: str, password: str, *,
                   merchant_id: str | None = None) -> tuple[User, str | None]:
    """Create a user; returns it and, for an operator, the otpauth:// URI of its new TOTP key.

    ValueError for a bad name, role, password or a taken name; LookupError for an unknown merchant."""
    if not USERNAME_RE.match(username):
        raise ValueError("a username is 3-64 characters [A-Za-z0-9_.@-]")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "merchant") != (merchant_id is not None):
        raise ValueError("a merchant user needs --merchant; an operator has none")
    if merchant_id is not None and not MERCHANT_RE.match(merchant_id):
        raise LookupError(f"no merchant {merchant_id}")
    pw = hash_password(password)
    key = new_totp_key() if role != "merchant" else None
    try:
        row = await conn.fetchrow(
            f"insert into console_users (username, role, merchant_id, password_hash, totp_enc) "
            f"values ($1, $2, $3, $4, $5) returning {_USER_COLS}",
            username, role, merchant_id, pw, box.seal(_totp_ad(username), base64.b32encode(key).decode())
            if key else None)
    except asyncpg.UniqueViolationError:
        raise ValueError(f"user {username} already exists") from None
    except asyncpg.ForeignKeyViolationError:
        raise LookupError(f"no merchant {merchant_id}") from None
    return User(**dict(row)), totp_uri(username, key) if key else None


async def get_user(conn: Any, username: str) -> User | None:
    row = await conn.fetchrow(f"select {_USER_COLS} from console_users where username = $1", username)
    return User(**dict(row)) if row else None


async def list_users(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch("select username, role, merchant_id, status, failed_logins, locked_until, created_at, "
                            "last_login_at from console_users order by username")
    return [dict(r) for r in rows]


async def _update(conn: Any, username: str, sql: str, *args: Any) -> User:
    async with conn.transaction():
        row = await conn.fetchrow(f"update console_users set {sql}, updated_at = now() where username = $1 "
                                  f"returning {_USER_COLS}", username, *args)
        if row is None:
            raise LookupError(f"no user {username}")
        await conn.execute("delete from console_sessions where user_id = $1", row["id"])   # log it out everywhere
    return User(**dict(row))


async def set_status(conn: Any, username: str, status: str) -> User:
    assert status in ("active", "disabled")
    return await _update(conn, username, "status = $2, failed_logins = 0, locked_until = null", status)


async def reset_password(conn: Any, username: str, password: str) -> User:
    return await _update(conn, username, "password_hash = $2, failed_logins = 0, locked_until = null",
                         hash_password(password))


async def reset_totp(conn: Any, box: SecretBox, username: str) -> tuple[User, str]:
    user = await get_user(conn, username)
    if user is None:
        raise LookupError(f"no user {username}")
    if not user.operator:
        raise ValueError("merchant users have no second factor")
    key = new_totp_key()
    user = await _update(conn, username, "totp_enc = $2, totp_last_step = 0",
                         box.seal(_totp_ad(username), base64.b32encode(key).decode()))
    return user, totp_uri(username, key)


# -------------------------------------------------------------------- login
@dataclass(slots=True)
class LoginResult:
    user: User | None          # set when the login succeeded
    error: str | None = None   # bad_credentials | bad_code | locked | disabled | wrong_area
    known: User | None = None  # the account the attempt named, when it exists (for the audit)


async def login(conn: Any, box: SecretBox, username: str, password: str, code: str | None, *, operator_area: bool,
                max_failures: int, lockout_seconds: int, at: float | None = None) -> LoginResult:
    """Check a username, password and (for operators) TOTP code; count failures and lock.

    The answers a browser sees for an unknown name, a wrong password and a
    wrong code are the same; the distinction is for the audit log."""
    at = time.time() if at is None else at
    row = await conn.fetchrow(f"select {_USER_COLS}, password_hash, totp_enc, totp_last_step, locked_until "
                              f"from console_users where username = $1", username) \
        if USERNAME_RE.match(username or "") else None
    if row is None:
        verify_password(_DUMMY, password or "")
        return LoginResult(None, "bad_credentials")
    user = User(row["id"], row["username"], row["role"], row["merchant_id"], row["status"])
    now_dt = datetime.fromtimestamp(at, timezone.utc)
    if row["locked_until"] is not None and row["locked_until"] > now_dt:
        return LoginResult(None, "locked", user)
    if not verify_password(row["password_hash"], password or ""):
        return await _failed(conn, user, "bad_credentials", max_failures, lockout_seconds, now_dt)
    if user.operator:
        if row["totp_enc"] is None:
            return LoginResult(None, "bad_code", user)
        key = base64.b32decode(box.open(_totp_ad(username), bytes(row["totp_enc"])).get())
        step = totp_step(key, (code or "").strip(), at)
        if step is None or step <= row["totp_last_step"]:
            return await _failed(conn, user, "bad_code", max_failures, lockout_seconds, now_dt)
        # each step once: a concurrent login with the same code loses here
        taken = await conn.execute("update console_users set totp_last_step = $2 where id = $1 "
                                   "and totp_last_step < $2", user.id, step)
        if taken.endswith(" 0"):
            return await _failed(conn, user, "bad_code", max_failures, lockout_seconds, now_dt)
    if user.status != "active":
        return LoginResult(None, "disabled", user)
    if user.operator != operator_area:
        return LoginResult(None, "wrong_area", user)
    rehash = _hasher.check_needs_rehash(row["password_hash"])
    await conn.execute("update console_users set failed_logins = 0, locked_until = null, last_login_at = $2"
                       + (", password_hash = $3" if rehash else "") + " where id = $1",
                       user.id, now_dt, *([_hasher.hash(password)] if rehash else []))
    return LoginResult(user, None, user)


async def _failed(conn: Any, user: User, error: str, max_failures: int, lockout_seconds: int,
                  now_dt: datetime) -> LoginResult:
    row = await conn.fetchrow(
        "update console_users set failed_logins = case when failed_logins + 1 >= $2 then 0 else failed_logins + 1 end, "
        "locked_until = case when failed_logins + 1 >= $2 then $3 else locked_until end where id = $1 "
        "returning locked_until", user.id, max_failures, now_dt + timedelta(seconds=lockout_seconds))
    if row["locked_until"] is not None and row["locked_until"] > now_dt:
        return LoginResult(None, "locked", user)
    return LoginResult(None, error, user)


# ----------------------------------------------------------------- sessions
@dataclass(slots=True)
class Session:
    id: str            # SHA-256 of the cookie's token
    user: User
    csrf: str
    created_at: datetime


def _sid(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def open_session(conn: Any, user: User, ip: str | None, user_agent: str | None) -> str:
    """A new session for ``user``; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    await conn.execute("insert into console_sessions (id, user_id, csrf, ip, user_agent) values ($1, $2, $3, $4, $5)",
                       _sid(token), user.id, secrets.token_urlsafe(32), ip, (user_agent or "")[:300])
    return token


async def session_for(conn: Any, token: str | None, *, idle: int, absolute: int) -> Session | None:
    """The live session of ``token``, its last use moved to now; None when there is none, it
    timed out (and is then deleted) or its user is disabled."""
    if not token or len(token) > 200:
        return None
    sid = _sid(token)
    row = await conn.fetchrow(
        "update console_sessions s set last_seen_at = now() from console_users u where s.id = $1 "
        "and u.id = s.user_id and u.status = 'active' and s.last_seen_at > now() - make_interval(secs => $2) "
        "and s.created_at > now() - make_interval(secs => $3) "
        "returning s.id, s.csrf, s.created_at, u.id as uid, u.username, u.role, u.merchant_id, u.status",
        sid, float(idle), float(absolute))
    if row is None:
        await conn.execute("delete from console_sessions where id = $1", sid)
        return None
    return Session(row["id"], User(row["uid"], row["username"], row["role"], row["merchant_id"], row["status"]),
                   row["csrf"], row["created_at"])


async def close_session(conn: Any, session_id: str) -> None:
    await conn.execute("delete from console_sessions where id = $1", session_id)


async def purge_sessions(conn: Any, absolute: int) -> int:
    r = await conn.execute("delete from console_sessions where created_at < now() - make_interval(secs => $1)",
                           float(absolute))
    return int(r.split()[-1])
