"""Entry point of search worker processes (see `search.run_search`).

It imports nothing heavy at module level, so the worker can import TensorFlow quietly before the
search code (and with it Keras) is unpickled.
"""

from __future__ import annotations

import pickle
import signal
from typing import Any


class _Tagged:
    """The parent's event queue, with every event tagged by this worker's slot number."""

    def __init__(self, events: Any, wid: int) -> None:
        self.events, self.wid = events, wid

    def put(self, event: tuple) -> None:
        self.events.put((self.wid, event))


def run(payload: bytes, events: Any, stop: Any, go: Any, quiet: bool, wid: int) -> None:
    # Ctrl-C reaches the whole process group; the parent handles it and sets `stop`, which the
    # running trial checks between batches (a signal landing inside TensorFlow's C code is unsafe)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if quiet:
        from .runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    from .search import mp_parent_alive, worker_main

    try:
        worker_main(*pickle.loads(payload), _Tagged(events, wid), stop, go)
    finally:
        # At exit the queue's feeder thread writes what is still buffered (the last events, "done"
        # with the reason the worker stopped) to the parent. Only when the parent is gone, and so
        # nobody reads the pipe, is that skipped, so that a full pipe can never hang the exit.
        if not mp_parent_alive()():
            events.cancel_join_thread()
