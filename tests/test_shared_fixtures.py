"""The suite's own machinery: what the xdist workers share must not turn one failure into another."""

import pytest

from tests.conftest import once_per_run


def test_a_shared_folder_whose_filling_raised_is_filled_again_by_the_next_worker(tmp_path_factory):
    with pytest.raises(RuntimeError), once_per_run(tmp_path_factory, "probe") as (folder, first):
        assert first
        (folder / "half").write_text("written before the crash")
        raise RuntimeError("the main job failed")
    with once_per_run(tmp_path_factory, "probe") as (folder, first):
        assert first, "the next worker fills it again (and shows the real error), not a missing file"
        assert not any(folder.iterdir()), "from an empty folder"
    with once_per_run(tmp_path_factory, "probe") as (_, first):
        assert not first
