"""Worker processes: the search's trials run in processes of their own, replaced every few trials.

The parent side (`run_in_workers`) keeps `--workers` processes busy; each worker (`run`, then
`worker_main`) opens the study, runs `loop.trial_loop` for up to `--trials-per-process` trials and
sends its events down a pipe to the parent. TensorFlow keeps some memory of every model a process has
trained, so a long search in one process would grow without bound; a worker that dies (out of memory,
`kill -9`) costs only its running trial, which is failed and queued again.

This module is the worker process's entry point: it imports nothing that imports TensorFlow at its
top, so that `run` can import TensorFlow quietly first.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_events
from typing import TYPE_CHECKING, Any, Callable

import optuna
from optuna.trial import TrialState

from ..errors import SearchError
from ..runtime import (
    configure_devices,
    gpu_for_worker,
    import_tensorflow_quietly,
    on_signal,
    visible_gpus,
)
from ..study import FINISHED, INTERRUPTED, open_storage
from .liveness import OWNER, fail_and_requeue
from .settings import TIMEOUT_REACHED, SearchOutcome, SearchSettings
from .strategies import make_pruner, make_sampler

if TYPE_CHECKING:
    from ..data import Splits
    from .space import SearchSpace

EXIT_GRACE_SECONDS = 30.0  # a worker that has said its last word and not exited by then is killed
STOP_SECONDS = 120.0  # a worker asked to stop (its trial marked interrupted) and still there then is killed


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


def run(payload: bytes, events: Any, stop: Any, go: Any, quiet: bool, gpu: str | None = None) -> None:
    """The worker process's entry point (see `run_in_workers`); `gpu`: the one card it may use.

    However the worker ends, it exits at once: everything it did is in the study and its last event is
    sent. The interpreter's teardown of TensorFlow takes seconds (which the parent would wait for before
    it starts the standby), and a thread some library left running would keep it from ending at all."""
    code = 1
    try:
        if gpu is not None:  # before any framework starts: it sees this card only, as its device 0
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        # Ctrl-C reaches the whole process group; the parent handles it and sets `stop`, which the
        # running trial checks between batches (a signal landing inside TensorFlow's C code is unsafe)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if quiet:
            import_tensorflow_quietly()
        worker_main(*pickle.loads(payload), _Events(events), stop, go, quiet)
        code = 0
    except SystemExit as e:
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    except BaseException:  # (worker_main reports its own errors; this is start-up failing)
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed or broken stream: nothing more can be said
                pass
        os._exit(code)


def mp_parent_alive() -> Callable[[], bool]:
    """In a worker process: a check that the process which started it is still there."""
    parent = mp.parent_process()
    return (lambda: True) if parent is None else parent.is_alive


def worker_main(
    settings: SearchSettings, space: SearchSpace, splits: Splits, study_name: str, storage_url: str,
    deadline: float | None, events: _Events, stop: Any, go: Any, quiet: bool = True,
) -> None:
    """Body of a worker process: up to `settings.trials_per_process` trials, events to the parent.

    The worker ignores SIGINT (see run); the parent asks it to stop through `stop`, which the
    running trial checks after every batch. A standby worker gets ready (TensorFlow, storage, data)
    and then waits for `go`, so that it takes over without a pause from a worker that is running its
    last trial. An error the trial loop cannot handle (the storage gone) goes to the parent as an
    "error" event with its traceback, and the worker exits with code 1."""
    # imported here, not at the top: this module is the worker process's entry point, which must
    # import TensorFlow quietly (run) before the training code imports it
    from .loop import claim_lock, trial_loop
    from .objective import Objective

    optuna.logging.set_verbosity(optuna.logging.ERROR if quiet else optuna.logging.WARNING)
    try:
        study = optuna.load_study(
            study_name=study_name, storage=open_storage(storage_url),
            sampler=make_sampler(settings.sampler, settings.seed),
            pruner=make_pruner(settings.pruner, settings.epochs, settings.goal),
        )
        events.put(("device", configure_devices(settings.mixed_precision)))
        objective = Objective(space, splits, settings.epochs, settings.seed, stop_requested=stop.is_set,
                              deadline=deadline if settings.prune_at_timeout else None, goal=settings.goal,
                              cost_cap=settings.cost_cap)
        parent = mp_parent_alive()
        while not go.wait(0.5):
            if stop.is_set() or not parent():
                return
        ran, reason = trial_loop(study, objective, settings.trials, deadline, settings.trials_per_process,
                                 events.put, keep_going=lambda: parent() and not stop.is_set(),
                                 heartbeat=settings.heartbeat, lock=claim_lock(storage_url))
        events.put(("done", ran, reason))
    except KeyboardInterrupt:
        events.put(("interrupted",))
    except Exception as e:
        events.put(("error", f"{type(e).__name__}: {_first_line(e)}", traceback.format_exc()))
        sys.exit(1)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else ""


@dataclass
class _Slot:
    """A worker process seen from the parent: the trial it is running and how it ended. A standby
    slot's process is getting ready to replace a worker that runs its last trial."""

    process: Any
    go: Any  # an Event: set, the worker runs trials; a standby waits for it
    events: Any  # the reading end of the pipe the worker sends its events down
    started: int = 0  # trials it has started
    gpu: str | None = None  # the card it is pinned to (None: no GPU, or it sees them all)
    running: int | None = None
    stop_reason: str | None = None
    error: tuple[str, str] | None = None  # an error the worker stopped on: its line and traceback
    ended: float | None = None  # time.monotonic() of its last event ("done", "error"): it exits next

    @property
    def standby(self) -> bool:
        return not self.go.is_set()


def run_in_workers(
    settings: SearchSettings, space: SearchSpace, splits: Splits, study: optuna.Study, storage_url: str,
    deadline: float | None, forward: Callable[[tuple], None], outcome: SearchOutcome,
) -> None:
    """Keep `settings.workers` worker processes busy until the study holds enough finished trials.

    Each worker runs up to `trials_per_process` trials and exits; a fresh one takes its place. It is
    started as a standby when the worker it replaces begins its last trial, so that starting Python
    and TensorFlow (5-7 s here) overlaps that trial instead of pausing the search. Each worker sends
    its events down a pipe of its own: a send is complete when it returns
    (nothing waits in a buffer when the worker exits), and a worker killed in the middle of one can
    break only its own pipe, not the others' (as with a queue's shared lock). The end of a pipe means
    its worker has exited and every event it sent has been read. `forward` receives every event (the
    terminal's progress), `outcome` counts the trials run and records why the search stopped.

    Every way out (the target reached, Ctrl-C or SIGTERM, an error here or in a worker) stops every
    worker: running trials end at their next batch, marked interrupted (re-run by the next run),
    and a worker that does not stop within `STOP_SECONDS` is killed. A worker that dies costs only the
    trial it was running, which is failed and queued again. A worker that has sent its last event
    ("done", "error") and has not exited `EXIT_GRACE_SECONDS` later is killed: its work is in the study.
    """
    ctx = mp.get_context("spawn")  # never fork a process that has TensorFlow threads
    stop = ctx.Event()
    payload = pickle.dumps((settings, space, without_test(splits), study.study_name, storage_url, deadline))
    quiet = logging_quiet()
    slots: dict[int, _Slot] = {}
    next_id = 0
    gpus = visible_gpus()  # each worker is pinned to the card the fewest workers use

    def needs_worker() -> bool:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        finished = sum(states.count(st) for st in FINISHED)
        busy = sum(1 for slot in slots.values() if slot.running is not None)
        return finished < settings.trials and (
            states.count(TrialState.WAITING) > 0 or finished + busy < settings.trials
        )

    def active() -> list[_Slot]:
        return [slot for slot in slots.values() if not slot.standby]

    def spawn(ready: bool) -> None:
        nonlocal next_id
        go = ctx.Event()
        if ready:
            go.set()
        reader, writer = ctx.Pipe(duplex=False)
        gpu = gpu_for_worker(gpus, [slot.gpu for slot in slots.values()])
        process = ctx.Process(target=run, name=f"cifar-automl-worker-{next_id}",
                              args=(payload, writer, stop, go, quiet, gpu))
        process.start()
        writer.close()  # the worker holds the only writing end: when it exits, the pipe ends
        slots[next_id] = _Slot(process, go, reader, gpu=gpu)
        next_id += 1

    def retire_standbys() -> None:
        """Standby workers have run no trial and hold nothing: stop them at once, wherever they are."""
        for wid in [w for w, slot in slots.items() if slot.standby]:
            slot = slots.pop(wid)
            slot.process.terminate()
            _join_or_kill(slot.process, EXIT_GRACE_SECONDS)
            slot.events.close()

    def reap(wid: int) -> None:
        slot = slots.pop(wid)
        _join_or_kill(slot.process, EXIT_GRACE_SECONDS)  # its pipe has ended: it is exiting, or hangs
        slot.events.close()
        code = slot.process.exitcode
        if code != 0:
            lost = fail_owned(study, slot.process.pid, f"worker process died (exit code {code})")
            if slot.error is not None:
                raise SearchError(f"a worker stopped: {slot.error[0]}", slot.error[1])
            # one that said its last word ran out of trials to take; one that died holding a trial
            # (killed after taking its first, before saying so) lost it; neither failed to start
            if not slot.started and not lost and slot.ended is None:
                raise SearchError(f"a trial worker process exited before its first trial (exit code {code})")
        if slot.stop_reason is not None:
            outcome.stopped_reason = slot.stop_reason

    # Ctrl-C / SIGTERM only set a flag that this loop checks: a KeyboardInterrupt raised at a random
    # moment can be swallowed (Python ignores exceptions raised inside weakref callbacks and __del__)
    requested = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        requested.set()

    def handle(slot: _Slot, event: tuple) -> None:
        if event[0] == "start":
            slot.running = event[1]
            slot.started += 1
            if (slot.started == settings.trials_per_process and needs_worker()
                    and sum(s.standby for s in slots.values()) < settings.workers):
                spawn(ready=False)  # to take over when this, its last trial, ends
        elif event[0] == "skipped":
            slot.running = None
            slot.started -= 1  # it ran nothing
        elif event[0] == "trial":
            slot.running = None
            outcome.ran += 1
        elif event[0] == "done":
            slot.stop_reason = event[2]
            slot.ended = time.monotonic()
        elif event[0] == "error":
            slot.error = (event[1], event[2])
            slot.ended = time.monotonic()
        elif event[0] == "interrupted":
            raise KeyboardInterrupt
        forward(event)

    with on_signal(signal.SIGINT, request_stop), on_signal(signal.SIGTERM, request_stop):
        try:
            while True:
                if requested.is_set():
                    raise KeyboardInterrupt
                if outcome.stopped_reason is None and deadline is not None and time.time() >= deadline:
                    outcome.stopped_reason = TIMEOUT_REACHED  # running trials finish; no new worker starts
                while outcome.stopped_reason is None and len(active()) < settings.workers and needs_worker():
                    standby = next((slot for slot in slots.values() if slot.standby), None)
                    if standby is not None:
                        standby.go.set()
                    else:
                        spawn(ready=True)
                if not active():
                    retire_standbys()  # the search ended before they were needed
                    return
                for slot in slots.values():  # its last word said, a worker that does not exit is ended
                    if slot.ended is not None and time.monotonic() - slot.ended > EXIT_GRACE_SECONDS:
                        slot.process.kill()
                pipes = {slot.events: wid for wid, slot in slots.items()}
                for pipe in wait_for_events(list(pipes), timeout=0.5):
                    try:
                        event = pipe.recv()
                    except (EOFError, OSError):  # the worker has exited, and all it sent has been read
                        reap(pipes[pipe])
                        continue
                    handle(slots[pipes[pipe]], event)
        except BaseException:
            stop.set()  # running trials end at their next batch and are marked interrupted
            retire_standbys()
            for slot in slots.values():  # (one that said its last word is only exiting)
                _join_or_kill(slot.process, EXIT_GRACE_SECONDS if slot.ended is not None else STOP_SECONDS)
            for slot in slots.values():
                fail_owned(study, slot.process.pid, INTERRUPTED)
                slot.events.close()
            raise


def without_test(splits: Splits) -> Splits:
    """What a worker needs of the splits: trials never see the test split, so it is not sent."""
    return dataclasses.replace(splits, x_test=splits.x_test[:0], y_test=splits.y_test[:0])


def logging_quiet() -> bool:
    """Whether workers should hide TensorFlow's start-up lines and Optuna's warnings (the CLI's
    --debug shows them)."""
    return optuna.logging.get_verbosity() > optuna.logging.WARNING


def _join_or_kill(worker: Any, timeout: float) -> None:
    """Wait for a worker that is exiting; kill it if it has not exited within `timeout` seconds."""
    worker.join(timeout=timeout)
    if worker.is_alive():
        worker.kill()
        worker.join()


def fail_owned(study: optuna.Study, pid: int | None, reason: str) -> list[int]:
    """Fail the trials a worker process of ours left RUNNING (all it had taken, even one it had not
    told the parent about yet) with `reason`; queued again unless it was interrupted on purpose."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(OWNER) or {}
        if owner.get("pid") == pid and owner.get("host") == socket.gethostname():
            if fail_and_requeue(study, t, reason):
                failed.append(t.number)
    return failed
