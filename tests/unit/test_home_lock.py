"""One lab per home: ``claim_home`` (no server needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stigmer_nb.errors import HistoryLockedError, HomeInUseError
from stigmer_nb.temporal.server import claim_home


def test_a_second_claim_names_the_holder_until_the_first_lets_go(tmp_path: Path) -> None:
    fd = claim_home(tmp_path)
    with pytest.raises(HomeInUseError, match=rf"{tmp_path} is held by another process \(PID {os.getpid()}\)"):
        claim_home(tmp_path)
    os.close(fd)
    os.close(claim_home(tmp_path))


def test_a_dead_holder_leaves_no_claim(tmp_path: Path) -> None:
    code = f"from stigmer_nb.temporal.server import claim_home; claim_home(__import__('pathlib').Path({str(tmp_path)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    os.close(claim_home(tmp_path))  # the kernel dropped the exited process's lock


def test_home_in_use_is_a_history_lock_error() -> None:
    # Code that catches HistoryLockedError for "another lab has this" keeps working.
    assert issubclass(HomeInUseError, HistoryLockedError)


def test_a_home_that_cannot_be_a_directory_is_a_configuration_error(tmp_path: Path) -> None:
    from stigmer_nb.errors import ConfigurationError
    from stigmer_nb.settings import Settings
    from stigmer_nb.temporal.server import EmbeddedServer

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match=r"cannot use .*a-file/home as the lab's home"):
        EmbeddedServer.launch(Settings.from_env({}, home=blocker / "home", ui=False))
    assert not list(tmp_path.glob("**/temporal.*"))  # nothing launched, nothing written
