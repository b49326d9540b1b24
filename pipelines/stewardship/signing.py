"""Steward keys: each approval and revocation is signed (Ed25519) by the steward who made it.

The audit log is a file; whoever can write it could otherwise write an approval.
A decision counts only with a signature by the key registered for the steward it
names, over the whole entry (sequence number and previous hash included, so a
signed decision cannot be replayed at another place in the log).

Keys live beside the pseudonym key, outside the repository and the warehouse:
``<secrets>/stewards/<steward id>.key`` (private, 0600, only on the steward's side)
and ``<steward id>.pub`` (the registry the gate reads). ``KNUTPUNKT_STEWARD_KEYS``
moves that folder. Writing a public key there is registering a steward: that
folder must be writable only by whoever may appoint stewards.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pipelines.border.keys import KeyMaterialError, key_file_path

KEYS_ENV = "KNUTPUNKT_STEWARD_KEYS"
_REPO_ROOT = Path(__file__).resolve().parents[2]


class SignatureError(RuntimeError):
    """A decision is unsigned, signed by another key, or names a steward with no registered key."""


def keys_dir() -> Path:
    """``<secrets>/stewards``: the folder of the pseudonym key file, unless ``KNUTPUNKT_STEWARD_KEYS``."""
    path = Path(os.environ.get(KEYS_ENV) or key_file_path().parent / "stewards").expanduser().resolve()
    if path.is_relative_to(_REPO_ROOT):
        raise KeyMaterialError(f"steward keys {path} lie inside the repository; keep keys outside it")
    return path


def steward_id(steward: str) -> str:
    """The key's file name for a steward as written in decisions ("Anna Berg, enhetschef")."""
    slug = re.sub(r"[^a-z0-9]+", "-", steward.strip().lower()).strip("-")
    if not slug:
        raise ValueError(f"steward {steward!r} has no usable name for a key")
    return slug


def create_key(steward: str) -> Path:
    """Create (or keep) the steward's key pair; the private key is written 0600, never overwritten."""
    folder = keys_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = folder / f"{steward_id(steward)}.key"
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.private_bytes_raw().hex() + "\n")
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        (folder / f"{steward_id(steward)}.pub").write_text(public.hex() + "\n")
    return private


def sign(steward: str, message: bytes) -> dict[str, str]:
    """The steward's signature of ``message``, as stored in the entry."""
    private = keys_dir() / f"{steward_id(steward)}.key"
    if not private.exists():
        raise SignatureError(
            f"no signing key for steward {steward!r} ({private}); create it with "
            f"`knutpunkt steward keygen --steward {steward!r}`"
        )
    if private.stat().st_mode & 0o077:
        raise KeyMaterialError(f"steward key {private} is readable by others; chmod 600 it")
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private.read_text().strip()))
    return {"key": steward_id(steward), "sig": key.sign(message).hex()}


def check(steward: str, signature: dict | None, message: bytes) -> None:
    """Raise SignatureError unless ``signature`` is the named steward's registered key over ``message``."""
    if not signature:
        raise SignatureError(f"the decision of {steward!r} is not signed")
    if signature.get("key") != steward_id(steward):
        raise SignatureError(
            f"the decision of {steward!r} is signed with the key of {signature.get('key')!r}"
        )
    public = keys_dir() / f"{steward_id(steward)}.pub"
    if not public.exists():
        raise SignatureError(f"steward {steward!r} has no registered key ({public})")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public.read_text().strip()))
        key.verify(bytes.fromhex(signature.get("sig", "")), message)
    except (InvalidSignature, ValueError):
        raise SignatureError(f"the signature on the decision of {steward!r} does not verify") from None
