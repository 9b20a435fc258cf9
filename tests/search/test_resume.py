"""``minsearch resume`` of a folder that is not a run. Resume after a SIGKILL of the driver
mid-search is tested on the seeded search (``tests/search/test_seeds.py``: killed between a
trial's two seeds) and across hosts (``tests/cluster/test_namespaces.py``)."""

from __future__ import annotations


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    from minsearch.cli.main import main

    assert main(["resume", str(tmp_path)]) == 2
    assert "not a minsearch run folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written
