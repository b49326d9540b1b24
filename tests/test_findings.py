"""Publishing findings: a lone small segment takes the smallest other segment with it."""

import polars as pl

from pipelines.discovery.findings import publishable


def _segments(sizes: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "finding_id": [f"segment:{i}" for i in range(len(sizes))],
            "kind": ["segment"] * len(sizes),
            "reported": [True] * len(sizes),
            "about_persons": [True] * len(sizes),
            "n_a": sizes,
            "n_b": [None] * len(sizes),
            "n_both": [None] * len(sizes),
            "n_population": [sum(sizes)] * len(sizes),
        },
        schema_overrides={"n_b": pl.Int64, "n_both": pl.Int64},
    )


def test_the_segment_withheld_with_a_small_one_may_be_the_first_row():
    """The chosen companion used to be a numpy bool, which polars read as a float when it came first."""
    published = publishable(_segments([40, 3, 90]), threshold=5)
    assert published["finding_id"].to_list() == ["segment:2"]


def test_a_lone_small_segment_takes_the_smallest_other_with_it():
    published = publishable(_segments([90, 3, 40, 60]), threshold=5)
    assert published["finding_id"].to_list() == ["segment:0", "segment:3"]
