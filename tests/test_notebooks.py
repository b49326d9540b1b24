"""The analyst notebooks run top to bottom on a real serving snapshot, and are committed without outputs.

They execute in a real Jupyter kernel (nbclient) against the snapshot of the shared small main-job
run (``discovery_platform`` in conftest), reading it only through ``notebooks/knutpunkt_notebook.py``.
The kernel is the analysts' own, ``knutpunkt``: as root it runs as ``knutpunkt-analyst``, which can
read the serving snapshot and nothing else of the home (``tests/test_notebook_kernel.py``).
"""

from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient

from pipelines.settings import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_at_least_three_notebooks_and_none_carries_outputs():
    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_on_the_snapshot(
    path: Path, discovery_platform, analyst_kernel, monkeypatch
):
    monkeypatch.setenv("KNUTPUNKT_HOME", str(discovery_platform["paths"].home))  # the kernel inherits it
    book = nbformat.read(path, as_version=4)
    NotebookClient(
        book, timeout=180, kernel_name=analyst_kernel, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    text = "".join(
        out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert f"Ögonblicksbild: {discovery_platform['current'].resolve().name}" in text
    assert "Traceback" not in text


def test_the_helper_withholds_small_counts_in_a_notebooks_own_aggregate(discovery_platform, monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(REPO_ROOT / "notebooks"))
    sys.modules.pop("knutpunkt_notebook", None)
    from knutpunkt_notebook import Snapshot, protect

    snap = Snapshot(discovery_platform["paths"].home)
    try:
        own = snap.query(
            """SELECT district, age_band, sum(n_persons)::BIGINT AS invanare, count(*) AS rader
               FROM discovery_quarter WHERE district <> 'Totalt' AND age_band <> 'Totalt'
               GROUP BY ALL ORDER BY invanare"""
        )
        assert "invanare" in snap.count_columns(
            "SELECT sum(n_persons)::BIGINT AS invanare FROM discovery_quarter"
        )
    finally:
        snap.close()
    shown = own["invanare"].drop_nulls()
    assert (shown >= snap.threshold).all()
    frame = pl.DataFrame({"group": ["a", "b"], "n": [3, 40], "share": [0.5, 0.25]})
    assert protect(frame, ["n"], 5).rows() == [("a", None, None), ("b", 40, 0.25)]


def test_the_helper_opens_only_a_snapshot_that_passed_the_bounds_audit(
    discovery_platform, monkeypatch, tmp_path
):
    import sys

    from pipelines.serving.snapshot import ServingPaths, write_snapshot

    monkeypatch.syspath_prepend(str(REPO_ROOT / "notebooks"))
    sys.modules.pop("knutpunkt_notebook", None)
    from knutpunkt_notebook import Snapshot

    snap = Snapshot(discovery_platform["paths"].home)
    try:
        report = snap.attack()  # the publish's engine, again, on what the notebook reads
    finally:
        snap.close()
    assert report.blocks > 0 and report.narrow == []
    unaudited = {
        "_snapshot": pl.DataFrame({"threshold": [5]}),
        "_disclosure": pl.DataFrame({"column_name": ["n"], "role": ["count"]}),
    }
    write_snapshot(ServingPaths(tmp_path / "warehouse" / "serving"), unaudited, {})
    with pytest.raises(PermissionError, match="bounds audit"):
        Snapshot(tmp_path)
