"""Sessions in signed cookies, with a CSRF token per session.

The cookie holds who is logged in (or nobody yet), a random session id, a CSRF token and when it was
issued, signed with HMAC-SHA256 under the workbench's session key (``accounts.Accounts.session_key``):
the server keeps no session table, and a cookie that was edited, made elsewhere or is older than
:data:`MAX_AGE` is no session. Every form carries the session's CSRF token and every POST must send it
back (a page on another site can make the browser post, not read the token). The cookie is
``HttpOnly`` and ``SameSite=Strict``. Logging out puts the session id on a deny list kept for the
server's lifetime, so a copied cookie dies with the logout, not only at its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field

COOKIE = "knutpunkt_workbench"
MAX_AGE = 8 * 3600  # a working day


@dataclass(frozen=True)
class Session:
    user: str | None  # the account's username; None before login
    sid: str
    csrf: str
    issued: int

    @classmethod
    def new(cls, user: str | None = None) -> Session:
        """A fresh session: new id and CSRF token (on login too, so a planted cookie is worth nothing)."""
        return cls(user, secrets.token_urlsafe(16), secrets.token_urlsafe(24), int(time.time()))


@dataclass
class Signer:
    key: bytes
    ended: set[str] = field(default_factory=set)  # session ids logged out since the server started

    def dump(self, session: Session) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(session.__dict__, separators=(",", ":")).encode())
        return f"{payload.decode()}.{self._mac(payload)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session in a cookie, if its signature holds, it is not too old and not logged out."""
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            session = Session(**json.loads(base64.urlsafe_b64decode(payload)))
        except (ValueError, TypeError):
            return None
        if time.time() - session.issued > MAX_AGE or session.sid in self.ended:
            return None
        return session

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    """Whether a POST carries its session's CSRF token."""
    return session is not None and bool(sent) and hmac.compare_digest(session.csrf, sent or "")
