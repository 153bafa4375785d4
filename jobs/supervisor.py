"""Several worker processes under one command: `decisiongraph worker --processes N`.

A worker is one asyncio process, so however many jobs it runs, their Python work
(decoding, projecting, building COPY rows) shares one core. REBUILD and VERIFY of
several tenants are bound by exactly that (docs/benchmarks.md), so N processes let them
use N cores. Each child is a whole worker, job loop and sweep; advisory locks already
make that safe (jobs/worker.py). The parent only supervises: it restarts a child that
dies (after a pause that grows while it keeps dying) and, on SIGTERM or SIGINT, passes
SIGTERM on and waits for each child's graceful stop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Final

from server.settings import Settings

_log = logging.getLogger("decisiongraph.worker")

RESTART_MIN: Final = 0.5
RESTART_MAX: Final = 10.0
STOP_GRACE_SECONDS: Final = 30.0


@dataclass
class _Slot:
    process: BaseProcess | None = None
    started: float = 0.0
    pause: float = RESTART_MIN
    due: float = 0.0  # when a dead child may be started again


def supervise(settings: Settings, processes: int, child: Callable[[Settings], None]) -> int:
    """Run `child(settings)` in `processes` spawned processes until SIGTERM/SIGINT."""
    context = multiprocessing.get_context("spawn")  # no inherited sockets or loops
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    slots = [_Slot() for _ in range(processes)]
    try:
        while not stopping:
            now = time.monotonic()
            for number, slot in enumerate(slots):
                if slot.process is not None and not slot.process.is_alive():
                    code = slot.process.exitcode
                    _log.warning("worker process %d exited (%s); restarting", number, code)
                    # A child that ran a while died of something new: restart it soon.
                    fresh = now - slot.started > RESTART_MAX * 2
                    slot.pause = RESTART_MIN if fresh else min(slot.pause * 2, RESTART_MAX)
                    slot.due, slot.process = now + slot.pause, None
                if slot.process is None and now >= slot.due:
                    slot.process = context.Process(
                        target=_child_main, args=(child, settings), name=f"dg-worker-{number}"
                    )
                    slot.process.start()
                    slot.started = now
            alive = [s.process.sentinel for s in slots if s.process is not None]
            wait(alive, timeout=0.5) if alive else time.sleep(0.5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _stop(slots)
    return 0


def _child_main(child: Callable[[Settings], None], settings: Settings) -> None:
    """A child that outlives its supervisor (killed, say, after its own stop grace ran
    out) would go on taking jobs that nobody supervises: when the parent is gone, the
    child stops as on SIGTERM, and exits outright if that has not ended it in time."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_follow_parent, args=(parent,), daemon=True).start()
    child(settings)


def _follow_parent(parent: BaseProcess) -> None:
    wait([parent.sentinel])
    _log.warning("supervisor gone; worker process %d stopping", os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_GRACE_SECONDS)
    os._exit(1)


def _stop(slots: list[_Slot]) -> None:
    running = [s.process for s in slots if s.process is not None and s.process.is_alive()]
    for process in running:
        process.terminate()  # SIGTERM: the worker's graceful stop
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in running:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            _log.warning("worker process %s did not stop in time; killing it", process.name)
            process.kill()
            process.join()
