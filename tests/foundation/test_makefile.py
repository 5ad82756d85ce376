"""`make clean` leaves nothing of the tests behind (without running it: it removes .venv)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, _test_home

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _clean_recipe() -> list[str]:
    result = subprocess.run(
        ["make", "-n", "clean"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.replace("\\\n", " ").splitlines()


def test_make_clean_stops_and_removes_the_test_database_home() -> None:
    home = str(_test_home())
    removals = [line for line in _clean_recipe() if line.startswith("rm -rf")]
    assert len(removals) == 1
    assert home in shlex.split(removals[0])
    assert ".venv" in shlex.split(removals[0])


def test_make_clean_stop_command_runs(tmp_path: Path) -> None:
    """The stop step of the recipe, pointed at a home with no server: it must not fail."""
    home = str(_test_home())
    stops = [line for line in _clean_recipe() if "EmbeddedPostgres" in line]
    assert len(stops) == 1
    command = stops[0][stops[0].index("then") + len("then") : stops[0].rindex("; fi")]
    command = command.replace(home, str(tmp_path / "home"))
    result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True)  # noqa: S602
    assert result.returncode == 0, result.stderr
