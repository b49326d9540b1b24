"""Logging in to the test platform's Superset as the users its deployment made."""

from dashboards.api import Superset


def login(platform: dict, who: str) -> Superset:
    """A session as ``"admin"`` or as a förvaltning's manager, with the generated credentials."""
    creds = platform["credentials"]
    cred = creds["admin"] if who == "admin" else creds["managers"][who]
    return Superset(platform["url"], cred["username"], cred["password"])
