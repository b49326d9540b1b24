"""Who may log in to the workbench: one account per steward named in a dataset contract.

A steward is whoever a contract names in ``steward:``; that name is also the identity their decisions
are signed with (``stewardship.signing``). Passwords are generated, never chosen or defaulted, and kept
with the platform's other secrets, beside the pseudonym key file and outside the repository
(``~/.config/knutpunkt/workbench/credentials.json``, 0600, as Superset's credentials are): whoever
appoints stewards hands each their line. The key that signs session cookies is kept there too, so a
restart does not log anyone out and nothing in the repository can forge a session.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.border.keys import key_file_path, write_private

SECRETS_ENV = "KNUTPUNKT_WORKBENCH_SECRETS"


def username(steward: str) -> str:
    """'Registeransvarig, Kommunledningsförvaltningen' -> 'registeransvarig-kommunledningsforvaltningen'."""
    ascii_ = unicodedata.normalize("NFKD", steward).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")


@dataclass(frozen=True)
class Accounts:
    """The workbench's secret folder: the stewards' generated passwords and the session key."""

    folder: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Accounts:
        return cls(Path(env.get(SECRETS_ENV) or key_file_path(env).parent / "workbench").resolve())

    @property
    def credentials(self) -> Path:
        return self.folder / "credentials.json"

    def read(self) -> dict[str, dict[str, str]]:
        """``{username: {"steward": name as in the contracts, "password": ...}}``."""
        return json.loads(self.credentials.read_text()) if self.credentials.exists() else {}

    def ensure(self, stewards: Iterable[str]) -> dict[str, dict[str, str]]:
        """A generated password for every steward who has none yet; existing ones are kept."""
        accounts = self.read()
        for steward in sorted(set(stewards)):
            accounts.setdefault(
                username(steward), {"steward": steward, "password": secrets.token_urlsafe(18)}
            )
        write_private(self.credentials, json.dumps(accounts, indent=2, ensure_ascii=False))
        return accounts

    def steward(self, user: str, password: str) -> str | None:
        """The steward whose account this is, if the password is right (compared in constant time)."""
        account = self.read().get(user)
        expected = account["password"] if account else secrets.token_urlsafe(18)  # same work either way
        ok = hmac.compare_digest(expected.encode(), password.encode())
        return account["steward"] if account and ok else None

    def steward_of(self, user: str) -> str | None:
        """The steward behind a username from a valid session (None if the account was removed)."""
        account = self.read().get(user)
        return account["steward"] if account else None

    def session_key(self) -> bytes:
        """The key that signs session cookies: generated once, 0600."""
        path = self.folder / "session.key"
        if not path.exists():
            write_private(path, secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())
