"""This process's lab endpoints, one per kind and state dir: started on first use, stopped at
exit (a forked engine worker stops its own through `stop_all`), and forgotten in a forked
child, whose copy of the parent's endpoint threads never came along."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar


class Endpoint(Protocol):
    """What a pool needs of an endpoint (`WSManLabEndpoint`, `SSHLabEndpoint`)."""

    work_dir: Path

    def start(self) -> None:
        """Start serving."""

    def stop(self) -> None:
        """Stop serving."""


class Serving:
    """`with endpoint:` starts it and stops it again (for an endpoint with start/stop)."""

    def start(self) -> None:
        """Start serving."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    def __enter__(self: S) -> S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


S = TypeVar("S", bound=Serving)
E = TypeVar("E", bound=Endpoint)


class EndpointPool(Generic[E]):
    """The endpoints of one kind: `get` the one for a state dir while holding `lock`."""

    def __init__(self, prefix: str, make: Callable[[Path], E]) -> None:
        self.prefix = prefix
        self.make = make
        self.lock = threading.Lock()
        self.endpoints: dict[Path, E] = {}
        _POOLS.append(self)

    def get(self, directory: Path) -> E:
        """The started endpoint for `directory` (resolved); call with `lock` held."""
        endpoint = self.endpoints.get(directory)
        if endpoint is None:
            endpoint = self.make(Path(tempfile.mkdtemp(prefix=self.prefix)))
            endpoint.start()
            self.endpoints[directory] = endpoint
        return endpoint

    def stop(self) -> None:
        """Stop every endpoint of this pool and remove its work folder."""
        with self.lock:
            for endpoint in self.endpoints.values():
                endpoint.stop()
                shutil.rmtree(endpoint.work_dir, ignore_errors=True)
            self.endpoints.clear()

    def forget(self) -> None:
        """Drop the endpoints without stopping them (they are another process's)."""
        self.lock = threading.Lock()
        self.endpoints.clear()


_POOLS: list[EndpointPool[Any]] = []


@atexit.register
def stop_all() -> None:
    """Stop this process's endpoints of every kind."""
    for pool in _POOLS:
        pool.stop()


def _forget_after_fork() -> None:
    for pool in _POOLS:
        pool.forget()


os.register_at_fork(after_in_child=_forget_after_fork)
