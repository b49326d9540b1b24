"""The border's personnummer rules and pseudonyms, checked against independent oracles."""

import hashlib
import hmac
import os
import random
import stat
from datetime import date

import duckdb
import pytest
from personnummer import personnummer as oracle

from pipelines.border.keys import KeyMaterialError, Keyring, keyring_from_env, load_keyring
from pipelines.border.sql import hmac_params, hmac_sql, install_macros
from pipelines.settings import REPO_ROOT

THIS_YEAR = date.today().year  # the oracle dates ten-digit numbers from today


def _luhn(digits: str) -> int:
    total = sum(sum(divmod(int(d) * (2 - i % 2), 10)) for i, d in enumerate(digits))
    return (10 - total % 10) % 10


def _random_forms(rng: random.Random, n: int) -> list[str]:
    """Every written form, valid and broken, including samordningsnummer and the 100+ '+'."""
    forms = []
    for _ in range(n):
        year = rng.randint(1915, 2024)
        month, day = (
            rng.randint(1, 12),
            rng.randint(1, 31) + (60 if rng.random() < 0.1 else 0),
        )  # 31 April too
        serial = f"{rng.randint(0, 999):03d}"
        ten = f"{year % 100:02d}{month:02d}{day:02d}{serial}"
        check = (_luhn(ten) + (rng.randint(1, 9) if rng.random() < 0.2 else 0)) % 10
        sep = "+" if THIS_YEAR - year >= 100 else "-"
        yymmdd, nnnc = ten[:6], ten[6:] + str(check)
        forms += [
            f"{year}{month:02d}{ten[4:6]}{nnnc}",
            f"{year}{month:02d}{ten[4:6]}-{nnnc}",
            f"{yymmdd}{sep}{nnnc}",
        ]
        if sep == "-":
            forms.append(f"{yymmdd}{nnnc}")
    return forms + ["", "abc", "19811299-9876", "811218-98760", "8112189876x"]


@pytest.fixture
def con():
    c = duckdb.connect()
    install_macros(c)
    yield c
    c.close()


def test_personnummer_validation_matches_the_personnummer_package(con):
    forms = _random_forms(random.Random(7), 3000)
    ours = con.execute(
        "SELECT s, pnr_valid(pnr_parts(s), $y), pnr_twelve(pnr_parts(s), $y) FROM unnest($f) t(s)",
        {"f": forms, "y": THIS_YEAR},
    ).fetchall()
    checked = valid = 0
    for s, ok, twelve in ours:
        try:
            expected = oracle.parse(s).format(True).replace("-", "").replace("+", "")
        except oracle.PersonnummerException:
            expected = None
        assert bool(ok) == (expected is not None), s
        if expected:
            assert twelve == expected, s
            valid += 1
        checked += 1
    assert checked == len(forms) and valid > len(forms) // 2


def test_month_ends_and_leap_days_match_the_personnummer_package(con):
    """The date is judged by arithmetic, not parsed: 29 February in 1900, 2000 and 2024 and not in 2023,
    30 April but not 31, no month 0 or 13, and the same for samordningsnummer (day + 60)."""
    forms = []
    for year in (1900, 1996, 2000, 2001, 2023, 2024):
        for month, day in ((2, 28), (2, 29), (2, 30), (4, 30), (4, 31), (12, 31), (1, 32), (13, 1), (0, 5)):
            for written in (day, day + 60):
                nine = f"{year % 100:02d}{month:02d}{written:02d}123"
                forms.append(f"{year}{month:02d}{written:02d}123{_luhn(nine)}")
    ours = con.execute(
        "SELECT s, coalesce(pnr_valid(pnr_parts(s), $y), false) FROM unnest($f) t(s)",
        {"f": forms, "y": THIS_YEAR},
    ).fetchall()
    expected = {s: oracle.valid(s) for s in forms}
    assert {s: ok for s, ok in ours} == expected
    assert (
        expected["19000229123" + str(_luhn("000229123"))] is False
        and sum(expected.values()) > len(forms) // 3
    )


def test_sex_and_birth_year_come_from_the_number(con):
    row = con.execute(
        "SELECT pnr_year(pnr_parts('121212+1212'), 2025), pnr_sex(pnr_parts('121212+1212'))"
    ).fetchone()
    assert row == (1912, "M")
    assert con.execute("SELECT pnr_sex(pnr_parts('19900101-0025'))").fetchone() == ("K",)


def test_sql_hmac_equals_python_hmac(con):
    keys = Keyring("v9", os.urandom(32))
    key = keys.unit("skola")
    values = [f"19{i:010d}" for i in range(200)]
    got = con.execute(
        f"SELECT {hmac_sql('v', 'k')} FROM unnest($v) t(v)", {"v": values} | hmac_params("k", key)
    )
    expected = [hmac.new(key.secret, v.encode(), hashlib.sha256).hexdigest() for v in values]
    assert [r[0] for r in got.fetchall()] == expected


def test_purposes_get_different_keys():
    keys = Keyring("v1", os.urandom(32))
    secrets_ = {
        keys.unit("skola").secret,
        keys.unit("socialtjanst").secret,
        keys.link().secret,
        keys.central().secret,
    }
    assert len(secrets_) == 4


def test_key_file_is_created_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("KNUTPUNKT_PSEUDONYM_KEY", raising=False)
    path = tmp_path / "keys" / "pseudonym.key"
    first = load_keyring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(path).master == first.master and first.version == "v1"


def test_key_file_inside_the_repository_is_refused(monkeypatch):
    monkeypatch.delenv("KNUTPUNKT_PSEUDONYM_KEY", raising=False)
    with pytest.raises(KeyMaterialError, match="inside the repository"):
        load_keyring(REPO_ROOT / "var" / "pseudonym.key")


def test_key_from_environment(monkeypatch):
    monkeypatch.setenv("KNUTPUNKT_PSEUDONYM_KEY", "ab" * 32)
    monkeypatch.setenv("KNUTPUNKT_KEY_VERSION", "v7")
    keys = keyring_from_env()
    assert keys.master == bytes.fromhex("ab" * 32) and keys.version == "v7"
    monkeypatch.setenv("KNUTPUNKT_PSEUDONYM_KEY", "short")
    with pytest.raises(KeyMaterialError):
        keyring_from_env()
