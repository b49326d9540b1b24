"""Disclosure control on real polars tables: primary and secondary suppression, and the audit.

The audit is checked against tables known to leak (so it can fail), and protect() against many
random tables with margins (so the secondary suppression is shown to settle on shareable output).
"""

import dataclasses
import itertools
import json

import numpy as np
import polars as pl
import pytest

from pipelines.disclosure import TOTAL, TableSpec, audit, protect, withhold_running
from pipelines.disclosure.bounds import bounds_audit
from pipelines.disclosure.joint import attack, moved, secure, snapshot_system
from pipelines.disclosure.memo import AuditMemo
from pipelines.disclosure.spec import protection_width


def cube(values: dict[tuple[str, ...], int], dims: tuple[str, ...]) -> pl.DataFrame:
    """A table of cells with every margin (TOTAL rows) added, like GROUP BY CUBE."""
    rows = {}
    for key, n in values.items():
        for mask in itertools.product((False, True), repeat=len(dims)):
            k = tuple(TOTAL if m else v for v, m in zip(key, mask, strict=True))
            rows[k] = rows.get(k, 0) + n
    return pl.DataFrame([(*k, n) for k, n in rows.items()], schema=[*dims, "n"], orient="row")


def cell(frame: pl.DataFrame, **where: str):
    return frame.filter(*(pl.col(k) == v for k, v in where.items()))["n"].item()


SPEC_1D = TableSpec("one", ("area",), ("n",), margins=("area",))
SPEC_2D = TableSpec("two", ("area", "kind"), ("n",), margins=("area", "kind"))


def test_counts_below_threshold_are_withheld_zero_included_and_the_threshold_is_configurable():
    frame = pl.DataFrame({"area": ["a", "b", "c", "d"], "n": [0, 4, 5, 9]})
    spec = TableSpec("flat", ("area",), ("n",))
    assert protect(frame, spec).frame["n"].to_list() == [None, None, 5, 9]
    assert protect(frame, spec, threshold=10).frame["n"].to_list() == [None, None, None, None]
    assert protect(frame, spec, threshold=1).frame["n"].to_list() == [None, 4, 5, 9]


def test_one_small_cell_beside_a_total_takes_its_smallest_sibling_with_it():
    frame = cube({("a",): 3, ("b",): 40, ("c",): 12}, ("area",))
    out = protect(frame, SPEC_1D).frame
    assert cell(out, area="a") is None and cell(out, area="c") is None  # 12 is the smallest sibling
    assert cell(out, area="b") == 40 and cell(out, area=TOTAL) == 55
    assert audit(out, SPEC_1D) == []


def test_a_lone_member_takes_its_total_with_it():
    frame = cube({("a",): 2}, ("area",))
    out = protect(frame, SPEC_1D).frame
    assert out["n"].to_list() == [None, None]


def test_primary_suppression_alone_is_reported_as_recoverable():
    frame = cube({("a", "x"): 3, ("a", "y"): 20, ("b", "x"): 30, ("b", "y"): 40}, ("area", "kind"))
    naive = frame.with_columns(pl.when(pl.col("n") < 5).then(None).otherwise(pl.col("n")).alias("n"))
    problems = audit(naive, SPEC_2D)
    assert [(p.column, p.rule) for p in problems] == [("n", "recoverable")]
    assert audit(frame, SPEC_2D)[0].rule == "below_threshold"


def test_two_by_two_pattern_protects_a_small_cell_in_a_table_with_margins():
    frame = cube({("a", "x"): 3, ("a", "y"): 20, ("b", "x"): 30, ("b", "y"): 40}, ("area", "kind"))
    result = protect(frame, SPEC_2D)
    out = result.frame
    assert [cell(out, area=a, kind=k) for a, k in [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]] == [
        None
    ] * 4
    assert cell(out, area=TOTAL, kind=TOTAL) == 93
    assert result.primary == {"n": 1} and result.secondary == {"n": 3}
    assert audit(out, SPEC_2D) == []


def test_the_audit_sees_a_cell_pinned_by_several_relations_together():
    # Row and column margins but no grand total: every relation has two unknowns, yet the withheld
    # row total of 'a' is the sum of the column totals minus the row total of 'b'.
    frame = cube({("a", "x"): 10, ("a", "y"): 20, ("b", "x"): 30, ("b", "y"): 40}, ("area", "kind"))
    frame = frame.filter(~((pl.col("area") == TOTAL) & (pl.col("kind") == TOTAL)))
    leaky = frame.with_columns(
        pl.when(
            (pl.col("area") != TOTAL) & (pl.col("kind") != TOTAL)
            | ((pl.col("area") == "a") & (pl.col("kind") == TOTAL))
        )
        .then(None)
        .otherwise(pl.col("n"))
        .alias("n")
    )
    problems = audit(leaky, SPEC_2D)
    assert [p.rule for p in problems] == ["recoverable"]
    assert leaky.row(problems[0].row, named=True) | {"n": None} == {"area": "a", "kind": TOTAL, "n": None}


def _random_table(seed: int, fewest_levels: int, filled: float) -> tuple[pl.DataFrame, TableSpec]:
    """A random 2- or 3-dimensional count table with its margins and a part of each count."""
    rng = np.random.default_rng(seed)
    dims = ("area", "kind", "age")[: 2 + seed % 2]
    levels = [[f"{d}{i}" for i in range(rng.integers(fewest_levels, 5))] for d in dims]
    values = {
        key: int(rng.choice([0, 1, 2, 3, 4, 6, 9, 15, 40]))
        for key in itertools.product(*levels)
        if rng.random() < filled
    }
    parts = {key: int(rng.integers(0, n + 1)) for key, n in values.items()}
    frame = cube(values, dims).join(cube(parts, dims).rename({"n": "part"}), on=list(dims))
    return frame, TableSpec("random", dims, ("n", "part"), margins=dims, complements={"part": "n"})


@pytest.mark.parametrize("seed", range(12))
def test_random_tables_with_margins_and_complements_come_out_shareable(seed):
    frame, spec = _random_table(seed, fewest_levels=1, filled=0.85)
    result = protect(frame, spec, threshold=5)
    assert audit(result.frame, spec, threshold=5) == []
    for count in ("n", "part"):
        published = result.frame[count].drop_nulls()
        assert published.is_empty() or published.min() >= 5
    both = result.frame.drop_nulls(["n", "part"])
    assert ((both["n"] - both["part"]) >= 5).all()
    kept = result.frame.filter(pl.col("n").is_not_null())
    assert (
        kept.join(frame, on=list(spec.dimensions), suffix="_in")
        .filter(pl.col("n") != pl.col("n_in"))
        .is_empty()
    )


def test_each_count_column_is_protected_on_its_own_and_derived_values_follow_their_count():
    frame = cube({("a",): 3, ("b",): 40, ("c",): 12}, ("area",)).with_columns(
        (pl.col("n") * 10).alias("m"), (pl.col("n") * 1.5).alias("share")
    )
    spec = TableSpec("two_counts", ("area",), ("n", "m"), margins=("area",), derived={"share": ("n",)})
    out = protect(frame, spec).frame
    assert out.filter(pl.col("area") == "a")["m"].item() == 30
    assert out.filter(pl.col("n").is_null())["share"].null_count() == 2
    assert audit(out, spec) == []
    shown = out.with_columns(pl.lit(1.0).alias("share"))
    assert {p.rule for p in audit(shown, spec)} == {"derived_shown"}


def test_exempt_rows_are_not_about_people_and_stay_as_they_are():
    frame = pl.DataFrame(
        {"kpi": ["kr", "persons"], "n": [None, 3], "value": [1e6, 0.4], "people": [False, True]}
    )
    spec = TableSpec("kpi", ("kpi",), ("n",), derived={"value": ("n",)}, applies="people")
    out = protect(frame, spec).frame
    assert out["value"].to_list() == [1e6, None]
    assert audit(out, spec) == []


def test_the_same_table_is_always_suppressed_the_same_way():
    frame = cube(
        {(a, k): (i * 7) % 11 for i, (a, k) in enumerate(itertools.product("abcd", "xyz"))}, ("area", "kind")
    )
    assert protect(frame, SPEC_2D).frame.equals(protect(frame, SPEC_2D).frame)


def test_a_running_forecast_is_withheld_from_the_first_withheld_month_on():
    frame = pl.DataFrame(
        {
            "kpi": ["k"] * 4,
            "month": [1, 2, 3, 4],
            "n": [50, None, 60, 70],
            "forecast": [600.0, 550.0, 560.0, 580.0],
        }
    )
    out = withhold_running(frame, ["forecast"], count="n", order="month", by=["kpi"])
    assert out["forecast"].to_list() == [600.0, None, None, None]


def test_a_spec_must_name_its_margins_and_counts():
    with pytest.raises(ValueError):
        TableSpec("bad", ("a",), ("n",), margins=("b",))
    with pytest.raises(ValueError):
        TableSpec("bad", ("a",), ("n",), derived={"x": ("m",)})


def test_a_small_complement_withholds_the_part_or_the_whole():
    # 20 decided of which 18 late says 2 were on time: the 2 must not be computable.
    frame = pl.DataFrame({"area": ["a", "b"], "decided": [20, 30], "late": [18, 10]})
    spec = TableSpec("flow", ("area",), ("decided", "late"), complements={"late": "decided"})
    assert {p.rule for p in audit(frame, spec)} == {"complement_below_threshold"}
    out = protect(frame, spec).frame
    assert out.row(0) == ("a", 20, None) and out.row(1) == ("b", 30, 10)
    assert audit(out, spec) == []


def test_complements_and_margins_together_come_out_shareable():
    decided = {("a", "x"): 20, ("a", "y"): 9, ("b", "x"): 30, ("b", "y"): 40}
    late = {("a", "x"): 18, ("a", "y"): 2, ("b", "x"): 10, ("b", "y"): 12}
    frame = cube(decided, ("area", "kind")).rename({"n": "decided"})
    frame = frame.join(cube(late, ("area", "kind")).rename({"n": "late"}), on=["area", "kind"])
    spec = TableSpec(
        "flow",
        ("area", "kind"),
        ("decided", "late"),
        margins=("area", "kind"),
        complements={"late": "decided"},
    )
    out = protect(frame, spec).frame
    assert audit(out, spec) == []
    on_time = out.filter(pl.col("late").is_not_null())
    assert ((on_time["decided"] - on_time["late"]) >= 5).all()


def test_a_count_that_only_some_rows_have_is_not_withheld_where_it_does_not_apply():
    frame = pl.DataFrame(
        {"kpi": ["calls", "share"], "n": [500, 40], "rest": [None, 3], "is_share": [False, True]}
    )
    spec = TableSpec(
        "kpi", ("kpi",), ("n", "rest"), derived={"value": ("n", "rest")}, only_where={"rest": "is_share"}
    )
    out = protect(frame.with_columns(pl.lit(1.0).alias("value")), spec).frame
    assert out["value"].to_list() == [1.0, None] and out["n"].to_list() == [500, 40]


# --- the bounds audit: what an attacker learns from non-negative integer cells and every relation ---

ATTACK_1D = TableSpec("one", ("area",), ("n",), margins=("area",))


def test_the_bounds_attack_recovers_what_the_linear_audit_misses():
    # The example: Totalt 97, published bands 91 and 5, four withheld bands summing to 1. No
    # linear equation pins a band, but non-negativity leaves each of them 0 or 1.
    frame = pl.DataFrame({"area": ["a", "b", "c", "d", "e", "f", TOTAL], "n": [91, 5, 1, 0, 0, 0, 97]})
    old = protect(frame, ATTACK_1D, bounds=False).frame  # what the publish did before issue 11
    assert old["n"].null_count() == 4 and audit(old, ATTACK_1D, relations=False) == []
    assert [p.rule for p in audit(old, ATTACK_1D)] == ["recoverable"] * 4
    report = attack({"one": old}, {"one": ATTACK_1D})
    assert sorted((n.low, n.high) for n in report.narrow) == [(0.0, 1.0)] * 4
    secured = secure({"one": old}, {"one": ATTACK_1D})
    assert secured.tables["one"]["n"].to_list() == [91, None, None, None, None, None, 97]
    assert secured.secondary == {"one": 1} and attack(secured.tables, {"one": ATTACK_1D}).narrow == []
    assert protect(frame, ATTACK_1D).frame.equals(secured.tables["one"])  # the default: bounds rounds


def test_part_at_most_whole_narrows_a_cell_and_the_audit_knows_it():
    # Late decisions of a förvaltning's month: Totalt 15, published members 14 -> withheld cells 0 or 1;
    # and a withheld late count can never exceed its published decided count.
    spec = TableSpec(
        "flow", ("kind",), ("decided", "late"), margins=("kind",), complements={"late": "decided"}
    )
    frame = pl.DataFrame(
        {
            "kind": ["x", "y", "z", TOTAL],
            "decided": [60, 3, 40, 103],
            "late": [14, None, None, 15],
        }
    )
    frame = frame.with_columns(
        pl.when(pl.col("kind") == "y").then(None).otherwise(pl.col("decided")).alias("decided")
    )
    report = attack({"flow": frame}, {"flow": spec})
    assert {(n.low, n.high) for n in report.narrow} >= {(0.0, 1.0)}


@pytest.mark.parametrize("seed", range(8))
def test_secured_random_snapshots_withstand_the_bounds_attack(seed):
    frame, spec = _random_table(100 + seed, fewest_levels=2, filled=0.9)
    tables, specs = {"random": protect(frame, spec, bounds=False).frame}, {"random": spec}
    secured = secure(tables, specs)
    assert attack(secured.tables, specs).narrow == []
    assert audit(secured.tables["random"], spec) == []
    kept = secured.tables["random"].drop_nulls("n").join(frame, on=list(spec.dimensions), suffix="_in")
    assert (kept["n"] == kept["n_in"]).all()


def test_two_publishes_audited_together_give_away_nothing_that_each_keeps():
    # Each publish alone hides 'a' (3) well, but a reader holding both subtracts: 55 - 40 - 12 = 3.
    before = pl.DataFrame({"area": ["a", "b", "c", TOTAL], "n": [None, 40, None, 55]})
    after = pl.DataFrame({"area": ["a", "b", "c", TOTAL], "n": [None, None, 12, 55]})
    specs = {"one": ATTACK_1D}
    assert attack({"one": before}, specs).narrow == [] and attack({"one": after}, specs).narrow == []
    together = attack({"one": after}, specs, previous={"one": before})
    assert {(n.low, n.high) for n in together.narrow} == {(3.0, 3.0)}
    secured = secure({"one": after}, specs, previous={"one": before})
    assert secured.tables["one"]["n"].to_list() == [None, None, None, 55]
    assert attack(secured.tables, specs, previous={"one": before}).narrow == []


def test_a_past_count_that_moved_between_publishes_is_counted_and_not_assumed_equal():
    before = pl.DataFrame({"area": ["a", "b", TOTAL], "n": [20, 30, 50]})
    after = pl.DataFrame({"area": ["a", "b", TOTAL], "n": [22, 30, 52]})
    assert moved({"one": after}, {"one": ATTACK_1D}, {"one": before}) == {"one": 2}
    assert attack({"one": after}, {"one": ATTACK_1D}, previous={"one": before}).narrow == []


def _tables(seeds: range, changed: int | None = None) -> tuple[dict, dict]:
    """Independent random tables, protected alone; ``changed``: that table with one count moved."""
    tables, specs = {}, {}
    for seed in seeds:
        frame, spec = _random_table(seed, fewest_levels=2, filled=0.9)
        spec = dataclasses.replace(spec, name=f"t{seed}")
        if seed == changed:
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == 0).then(pl.col("n") + 7).otherwise("n").alias("n")
            )
        tables[spec.name], specs[spec.name] = protect(frame, spec, bounds=False).frame, spec
    return tables, specs


def test_a_publish_solves_again_only_the_blocks_that_changed_and_secures_alike(tmp_path):
    """The memo of the last publish spares the blocks that did not change; the secured tables are those of
    an audit without it, and a publish of the same tables solves nothing."""
    seeds, key = range(300, 304), b"k" * 32
    memo = AuditMemo(tmp_path / "memo.json", key)
    first = secure(*_tables(seeds), memo=memo)
    memo.save()
    assert first.report.reused == 0 and first.report.solves > 0
    tables, specs = _tables(seeds, changed=302)
    fresh = secure(tables, specs)
    memo = AuditMemo(tmp_path / "memo.json", key)
    reused = secure(tables, specs, memo=memo)
    memo.save()
    assert {n: f.to_dicts() for n, f in reused.tables.items()} == {
        n: f.to_dicts() for n, f in fresh.tables.items()
    }
    assert reused.report.widths == fresh.report.widths and reused.report.blocks == fresh.report.blocks
    assert reused.report.reused > 0, "the unchanged tables' blocks come from the memo"
    assert 0 < reused.report.solves < fresh.report.solves / 2, "the changed table's block is solved again"
    again = secure(tables, specs, memo=AuditMemo(tmp_path / "memo.json", key))
    assert again.report.solves == 0 and again.rounds == reused.rounds > 1, (
        "each round's audits, narrow ones too"
    )


def test_a_forged_memo_entry_does_not_pass_a_narrow_cell(tmp_path):
    """Whoever can write the memo could declare a disclosive block safe: an entry counts only under the
    platform's key. A narrow block's entry rewritten as safe, the file signed under another key, or not a
    memo at all: the block is solved again and its four cells, 0 or 1 each, are found narrow."""
    frame = pl.DataFrame(
        {"area": ["a", "b", "c", "d", "e", "f", TOTAL], "n": [91, 5, None, None, None, None, 97]}
    )
    system = snapshot_system({"one": frame}, {"one": ATTACK_1D}).system
    path, key, width = tmp_path / "memo.json", b"k" * 32, protection_width(5)

    def narrow(memo: AuditMemo) -> tuple[int, int, int]:
        report = bounds_audit(system, width, memo=memo)
        return len(report.narrow), report.reused, memo.rejected

    honest = AuditMemo(path, key)
    assert narrow(honest) == (4, 0, 0)
    honest.save()
    assert narrow(AuditMemo(path, key)) == (4, 1, 0), "a narrow block's audit is reused as narrow"
    stored = json.loads(path.read_text())
    (entry,) = stored.values()
    entry["solved"] |= {"narrow": [], "widths": [99.0] * len(entry["solved"]["widths"])}
    path.write_text(json.dumps(stored))
    assert narrow(AuditMemo(path, key)) == (4, 0, 1)
    honest.save()
    assert narrow(AuditMemo(path, b"x" * 32)) == (4, 0, 1)
    path.write_text("not json {")
    assert narrow(AuditMemo(path, key)) == (4, 0, 1)


def test_a_block_is_reused_only_where_everything_its_audit_reads_is_the_same(tmp_path):
    """The memo's key holds what the published values leave for the withheld cells, and the width: the
    withheld cells' sum moved, or another width, is solved again; counts moved alike with their total give
    the same problem and reuse it."""
    memo = AuditMemo(tmp_path / "memo.json", b"k" * 32)

    def reused(published: int, total: int, width: float) -> int:
        frame = pl.DataFrame({"area": ["a", "b", "c", "d", TOTAL], "n": [published, 40, None, None, total]})
        system = snapshot_system({"one": frame}, {"one": ATTACK_1D}).system
        return bounds_audit(system, width, memo=memo).reused

    assert reused(30, 90, 5.0) == 0 and reused(30, 90, 5.0) == 1
    assert reused(31, 91, 5.0) == 1, "c + d = 20 all the same"
    assert reused(30, 91, 5.0) == 0, "c + d = 21"
    assert reused(30, 90, 6.0) == 0 and reused(30, 91, 5.0) == 1
