"""Shared fixtures: every test gets its own state dir, so lab hosts never leak between tests.
Plain helpers are in kit.py."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Where PYTHONDONTWRITEBYTECODE is set (this machine sets it), every test process would compile
# the package, and pytest rewrite every test module, from source again: ~5 s of CPU per xdist
# worker before its first test, and ~0.25 s per `python -m pushinstall`. This process and its
# subprocesses keep their bytecode in one cache outside the tree instead (Python checks each
# .pyc against its source's mtime and size, so an edit is never served stale). Set before the
# first import of the package or of a test module.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.pycache_prefix = os.environ.setdefault(
    "PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / f"pushinstall-pycache-{os.getuid()}"))
sys.dont_write_bytecode = False

import pytest
from agent_host import SharedHost
from kit import Wire

from pushinstall.lab import LabHost, lab_host
from pushinstall.lab.wsman.endpoint import WSManLabEndpoint


@pytest.fixture(autouse=True)
def _isolated_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("PUSHINSTALL_STATE_DIR", str(state))
    return state


@pytest.fixture(autouse=True)
def _null_device_stays() -> Iterator[None]:
    """No test may leave /dev/null anything but the null device: run as root, a rename or a
    delete-and-move onto it replaces it for every process on the machine (it happened, and a
    later test's open of /dev/null failed far from the cause). The test that ran when it went
    fails here, with what /dev/null had become."""
    yield
    try:
        mode = os.stat(os.devnull).st_mode
    except FileNotFoundError:
        pytest.fail(f"{os.devnull} is gone after this test (or one running beside it)")
    if not stat.S_ISCHR(mode):
        pytest.fail(f"{os.devnull} is no longer a character device after this test "
                    f"(or one running beside it): mode {stat.filemode(mode)}")


@pytest.fixture
def state_dir() -> Path:
    """This test's state dir (PUSHINSTALL_STATE_DIR)."""
    return Path(os.environ["PUSHINSTALL_STATE_DIR"])


@pytest.fixture
def host() -> LabHost:
    """A fresh lab host `web01` (Server 2019, nothing installed) in this test's state dir."""
    return lab_host("web01")


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    """The lab's WS-Man endpoint on loopback, serving no host yet."""
    with WSManLabEndpoint(tmp_path / "endpoint") as endpoint:
        yield Wire(endpoint)


@pytest.fixture(scope="session")
def agent_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedHost]:
    """This test process's mono agent host (agent_host.SharedHost): `.host(tmp_path)`."""
    shared = SharedHost(tmp_path_factory.mktemp("agent-session"))
    yield shared
    shared.close()
