"""Pseudonymisation key material, held outside the warehouse and the repository.

The personnummer space is small enough to brute-force an unkeyed hash, so every
pseudonym is an HMAC-SHA256 under a secret. One master secret is read from
``KNUTPUNKT_PSEUDONYM_KEY`` (hex) or from a key file (created 0600 on first use);
each purpose (a unit's zone, the linkage vault, the central citizen key) gets
its own derived key, so that pseudonyms of different purposes cannot be joined.
The key never appears in SQL text, logs or Dagster events: only its version does.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KEY_ENV = "KNUTPUNKT_PSEUDONYM_KEY"
KEY_VERSION_ENV = "KNUTPUNKT_KEY_VERSION"
KEY_FILE_ENV = "KNUTPUNKT_KEY_FILE"
DEFAULT_KEY_FILE = Path.home() / ".config" / "knutpunkt" / "pseudonym.key"
_REPO_ROOT = Path(__file__).resolve().parents[2]


class KeyMaterialError(RuntimeError):
    """The key material is missing, malformed or stored somewhere it must not be."""


@dataclass(frozen=True)
class HmacKey:
    """A derived key, padded for HMAC-SHA256 so DuckDB can compute it in plain SQL."""

    version: str
    secret: bytes = field(repr=False)

    @property
    def inner_pad(self) -> bytes:
        return bytes(b ^ 0x36 for b in self.secret.ljust(64, b"\0"))

    @property
    def outer_pad(self) -> bytes:
        return bytes(b ^ 0x5C for b in self.secret.ljust(64, b"\0"))

    def pseudonym(self, value: str) -> str:
        """Python reference of the SQL pseudonym; used where a single value is needed."""
        return hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Keyring:
    version: str
    master: bytes = field(repr=False)

    def derive(self, purpose: str) -> HmacKey:
        return HmacKey(self.version, hmac.new(self.master, purpose.encode(), hashlib.sha256).digest())

    def unit(self, unit: str) -> HmacKey:
        """Key of a unit zone: the same person gets a different pseudonym in each unit."""
        return self.derive(f"unit:{unit}")

    def link(self) -> HmacKey:
        """Key of the linkage vault token, from which the central key is derived at linking."""
        return self.derive("link")

    def central(self) -> HmacKey:
        """Key of the central citizen key, used only where units are joined."""
        return self.derive("central")

    def audit_memo(self) -> HmacKey:
        """Key that signs the bounds audit's memo (``pipelines.disclosure.memo``): not a pseudonym key."""
        return self.derive("disclosure:audit-memo")


def key_file_path(env: Mapping[str, str] = os.environ, key_file: Path | None = None) -> Path:
    """Where the master key file is (or will be created): the folder the platform's secrets share."""
    return Path(key_file or env.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE).expanduser().resolve()


def load_keyring(key_file: Path | None = None, *, hex_key: str | None = None, version: str = "v1") -> Keyring:
    """The master key: ``hex_key`` if given, else the key file (created 0600 on first use).

    Everything comes in as parameters, so a caller sees which key it uses; the entry points read the
    environment once, through :func:`keyring_from_env`.
    """
    if hex_key:
        return Keyring(version, _parse_hex(hex_key, KEY_ENV))
    path = Path(key_file or DEFAULT_KEY_FILE).expanduser().resolve()
    if path.is_relative_to(_REPO_ROOT):
        raise KeyMaterialError(f"key file {path} lies inside the repository; keep keys outside it")
    if not path.exists():
        _create_key_file(path)
    if path.stat().st_mode & 0o077:
        raise KeyMaterialError(f"key file {path} is readable by others; chmod 600 it")
    file_version, _, hex_key = path.read_text().strip().partition(":")
    return Keyring(file_version, _parse_hex(hex_key, str(path)))


def keyring_from_env(env: Mapping[str, str] = os.environ) -> Keyring:
    """For entry points (the CLI, the ``Platform`` resource): ``KNUTPUNKT_PSEUDONYM_KEY`` and
    ``KNUTPUNKT_KEY_VERSION``, else the key file ``KNUTPUNKT_KEY_FILE`` (default ``~/.config/knutpunkt``)."""
    return load_keyring(key_file_path(env), hex_key=env.get(KEY_ENV), version=env.get(KEY_VERSION_ENV, "v1"))


def write_private(path: Path, text: str) -> None:
    """Write a secret beside the key file: 0600 from its first byte, in a 0700 folder, swapped in whole
    (a reader never sees half a file). For generated passwords and session keys."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"v1:{secrets.token_hex(32)}\n")


def _parse_hex(value: str, source: str) -> bytes:
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        raise KeyMaterialError(f"key from {source} is not hexadecimal") from None
    if len(key) < 32:
        raise KeyMaterialError(f"key from {source} is shorter than 32 bytes")
    return key
