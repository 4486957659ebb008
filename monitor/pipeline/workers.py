"""A small pool of worker processes for CPU-bound, untrusted-input stages (parse, extract).

Each call has a wall-clock limit; a worker that overruns it is killed and replaced, so a
pathological feed or page costs one worker restart, never a hung poll. Work runs on other
cores than the fetching threads of the main process.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from monitor.errors import MonitorError, SkipItem, WorkTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")

_CTX = mp.get_context("spawn")


@dataclass(frozen=True)
class Context:
    """A read-only object (compiled rules) sent to each worker once per version, then passed as the
    first argument of every call made with it."""

    version: int
    value: Any


def _batch_scheduling() -> None:
    """Mark this CPU-bound worker SCHED_BATCH (Linux, no privilege needed): the kernel then favours the
    orchestrating process's short wake-ups, so workers are fed without being preempted as often."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError:
            log.debug("SCHED_BATCH not available; keeping the default policy")


def _serve(conn: Connection) -> None:
    """Worker loop: keep the latest context; run (function, args, with_context) until the pipe closes.
    Ctrl-C reaches the whole process group; the service shuts its workers down itself (closing their
    pipes), so a worker ignores SIGINT instead of dying mid-page with a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _batch_scheduling()
    context: Any = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "context":
            context = message[1]
            continue
        _, func, args, with_context = message
        try:
            conn.send(("ok", func(context, *args) if with_context else func(*args)))
        except MonitorError as exc:
            conn.send(("error", exc))
        except Exception as exc:  # a bug or library failure in untrusted input: report, keep serving
            conn.send(("crash", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self) -> None:
        self.context_version: int | None = None
        self.conn, child = _CTX.Pipe()
        self.process: BaseProcess = _CTX.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class WorkerPool:
    """``run(func, *args, timeout=...)`` from any thread; at most ``size`` calls run at once.

    ``urgent`` calls (feed parsing) are served before waiting non-urgent ones (page extraction), so
    the next feed's entries reach the queue before the extraction queue runs dry."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._idle: list[_Worker] = []
        self._started = 0
        self._lock = threading.Lock()
        # one condition per priority, so a released worker wakes one waiter, not every thread waiting
        self._waiters = {True: threading.Condition(self._lock), False: threading.Condition(self._lock)}
        self._waiting = {True: 0, False: 0}
        self._closed = False

    def start(self, warm_up: Callable[[], object] | None = None, timeout: float = 120.0) -> None:
        """Start every worker now and run ``warm_up`` in each (in parallel), so the first poll does not
        pay for process start-up and imports."""
        with self._lock:
            fresh = [_Worker() for _ in range(self._size - self._started)]
            self._started = self._size
        if warm_up is not None:
            for worker in fresh:
                worker.conn.send(("call", warm_up, (), False))
            for index, worker in enumerate(fresh):
                try:
                    if worker.conn.poll(timeout):
                        worker.conn.recv()
                except (EOFError, OSError) as exc:  # died while warming up: start a plain replacement
                    log.warning("event=worker_warm_up_failed error=%s", exc or "connection closed")
                    worker.kill()
                    fresh[index] = _Worker()
        for worker in fresh:
            self._release(worker)

    def _acquire(self, urgent: bool) -> _Worker:
        with self._lock:
            self._waiting[urgent] += 1
            try:
                worker = self._take(urgent)
            finally:
                self._waiting[urgent] -= 1
            self._wake_one()  # pass on any other idle worker
            return worker

    def _take(self, urgent: bool) -> _Worker:
        """With the lock held: an idle worker (urgent callers first), a new one, or wait for one."""
        while True:
            if self._idle and (urgent or not self._waiting[True]):
                return self._idle.pop()
            if not self._idle and self._started < self._size:
                worker = _Worker()  # raises before counting if the process cannot start
                self._started += 1
                return worker
            if self._idle:  # held back for an urgent caller: make sure one is awake to take it
                self._waiters[True].notify()
            self._waiters[urgent].wait()

    def _wake_one(self) -> None:
        """With the lock held: if a worker is idle, wake one waiter, urgent ones first."""
        if self._idle:
            self._waiters[bool(self._waiting[True])].notify()

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)
            self._wake_one()

    def run(self, func: Callable[..., T], *args: Any, timeout: float, context: Context | None = None,
            urgent: bool = False) -> T:
        """``func(*args)``, or ``func(context.value, *args)`` when a context is given."""
        worker = self._acquire(urgent)
        try:
            if context is not None and worker.context_version != context.version:
                worker.conn.send(("context", context.value))
                worker.context_version = context.version
            worker.conn.send(("call", func, args, context is not None))
            if not worker.conn.poll(timeout):
                raise WorkTimeout(f"{func.__name__} exceeded its {timeout:g}s wall-clock limit; worker killed")
            status, value = worker.conn.recv()
        except WorkTimeout:
            self._replace(worker)
            raise
        except (EOFError, OSError) as exc:
            self._replace(worker)
            raise WorkTimeout(f"{func.__name__} worker died: {exc or 'connection closed'}") from exc
        self._release(worker)
        if status == "error":
            raise value
        if status == "crash":
            raise SkipItem(f"{func.__name__} failed: {value}")
        return value

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        if self._closed:
            return
        log.warning("worker process killed; starting a replacement")
        self._release(_Worker())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


class InlinePool:
    """Same interface, run in the calling thread (tests, and debugging with a plain traceback)."""

    def run(self, func: Callable[..., T], *args: Any, timeout: float, context: Context | None = None,
            urgent: bool = False) -> T:
        return func(context.value, *args) if context is not None else func(*args)

    def close(self) -> None:
        return None
