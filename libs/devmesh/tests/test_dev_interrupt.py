"""Ctrl-C on ``ark-mesh dev`` stops every part and keeps the run folder with its logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Dev

pytestmark = pytest.mark.slow


def test_ctrl_c_stops_the_mesh_and_keeps_its_logs_in_the_folder_it_names(tmp_path: Path) -> None:
    dev = Dev.start(tmp_path, ["--preset", "simple", "--no-query"])
    dev.wait_ready()
    assert (tmp_path / "dev.json").is_file()
    code = dev.interrupt()
    assert code == 0, dev.lines
    last = dev.lines[-1]
    assert last.startswith("stopped; logs kept in "), dev.lines
    folder = Path(last.removeprefix("stopped; logs kept in "))
    assert folder.parent == tmp_path / "runs"
    assert (folder / "controller.log").stat().st_size > 0
    assert (folder / "controller.yaml").is_file()
    assert not (tmp_path / "dev.json").exists(), "the state file names a mesh that is gone"
