"""The engine: a fleet of hosts through gather -> plan -> apply -> verify, events out.

`fleet` fans hosts out (forks, serial batches, Ctrl-C, deadlines), `host` is one host's
pipeline, `reboot` the restart-and-wait, `support` the retry and deadline helpers, `workers`
the forked worker processes. `run_fleet` with `RunOptions` is what the runner calls.
"""

from pushinstall.engine.fleet import RunOptions, RunSummary, new_run_id, run_fleet
from pushinstall.engine.host import TransportFactory
from pushinstall.engine.support import Backoff
from pushinstall.engine.workers import ProcessHooks

__all__ = [
    "Backoff", "ProcessHooks", "RunOptions", "RunSummary", "TransportFactory", "new_run_id",
    "run_fleet",
]
