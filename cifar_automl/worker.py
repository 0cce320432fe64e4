"""Entry point of search worker processes (see `search.run_search`).

It imports nothing heavy at module level, so the worker can import TensorFlow quietly before the
search code (and with it Keras) is unpickled.
"""

from __future__ import annotations

import pickle
import signal
from typing import Any


class _Events:
    """The worker's end of its own pipe to the parent.

    A send is complete when it returns, so nothing is left to flush when the worker exits. If the
    parent is gone, events are dropped; the worker stops before its next trial (see worker_main)."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def put(self, event: tuple) -> None:
        try:
            self.pipe.send(event)
        except OSError:  # BrokenPipeError: nobody reads any more
            pass


def run(payload: bytes, events: Any, stop: Any, go: Any, quiet: bool) -> None:
    # Ctrl-C reaches the whole process group; the parent handles it and sets `stop`, which the
    # running trial checks between batches (a signal landing inside TensorFlow's C code is unsafe)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if quiet:
        from .runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    from .search import worker_main

    worker_main(*pickle.loads(payload), _Events(events), stop, go)
