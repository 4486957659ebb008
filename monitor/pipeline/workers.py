"""A small pool of worker processes for CPU-bound, untrusted-input stages (parse, extract).

Each call has a wall-clock limit; a worker that overruns it is killed and replaced, so a
pathological feed or page costs one worker restart, never a hung poll. Work runs on other
cores than the fetching threads of the main process.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from monitor.errors import MonitorError, SkipItem, WorkTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")

_CTX = mp.get_context("spawn")


def _serve(conn: Connection) -> None:
    """Worker loop: run (function, args) pairs until the pipe closes."""
    while True:
        try:
            func, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", func(*args)))
        except MonitorError as exc:
            conn.send(("error", exc))
        except Exception as exc:  # a bug or library failure in untrusted input: report, keep serving
            conn.send(("crash", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self) -> None:
        self.conn, child = _CTX.Pipe()
        self.process: BaseProcess = _CTX.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class WorkerPool:
    """``run(func, *args, timeout=...)`` from any thread; at most ``size`` calls run at once."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._closed = False

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._idle.empty() and self._started < self._size:
                self._started += 1
                return _Worker()
        return self._idle.get()

    def run(self, func: Callable[..., T], *args: Any, timeout: float) -> T:
        worker = self._acquire()
        try:
            worker.conn.send((func, args))
            if not worker.conn.poll(timeout):
                raise WorkTimeout(f"{func.__name__} exceeded its {timeout:g}s wall-clock limit; worker killed")
            status, value = worker.conn.recv()
        except WorkTimeout:
            self._replace(worker)
            raise
        except (EOFError, OSError) as exc:
            self._replace(worker)
            raise WorkTimeout(f"{func.__name__} worker died: {exc or 'connection closed'}") from exc
        self._idle.put(worker)
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
        self._idle.put(_Worker())

    def close(self) -> None:
        self._closed = True
        while not self._idle.empty():
            self._idle.get_nowait().kill()


class InlinePool:
    """Same interface, run in the calling thread (tests, and debugging with a plain traceback)."""

    def run(self, func: Callable[..., T], *args: Any, timeout: float) -> T:
        return func(*args)

    def close(self) -> None:
        return None
