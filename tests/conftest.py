"""Shared fixtures: every test gets its own state dir, so lab hosts never leak between tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("PUSHINSTALL_STATE_DIR", str(state))
    return state


@pytest.fixture
def state_dir() -> Path:
    """This test's state dir (PUSHINSTALL_STATE_DIR)."""
    import os

    return Path(os.environ["PUSHINSTALL_STATE_DIR"])
