"""The worker pool: wall-clock kills, dead workers, contexts, priority and wake-ups, scheduling policy."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import workfns

from monitor.errors import SkipItem, WorkTimeout
from monitor.pipeline.workers import Context, WorkerPool


@pytest.fixture
def pool():
    p = WorkerPool(1)
    p.start(workfns.pid)
    yield p
    p.close()


def test_a_dead_worker_is_reported_and_replaced(pool: WorkerPool) -> None:
    first = pool.run(workfns.pid, timeout=10)
    with pytest.raises(WorkTimeout, match="worker died"):
        pool.run(workfns.die, timeout=10)
    assert pool.run(workfns.pid, timeout=30) != first


def test_an_overrun_is_killed_and_the_pool_keeps_serving(pool: WorkerPool) -> None:
    with pytest.raises(WorkTimeout, match="wall-clock"):
        pool.run(workfns.sleep, 30, timeout=0.5)
    assert pool.run(workfns.sleep, 0, timeout=30) == "slept"


def test_unexpected_exceptions_become_skip_item(pool: WorkerPool) -> None:
    with pytest.raises(SkipItem, match="ZeroDivisionError"):
        pool.run(workfns.boom, timeout=10)
    assert pool.run(workfns.sleep, 0, timeout=10) == "slept"


def test_context_is_sent_once_per_version_and_replaced_on_change(pool: WorkerPool) -> None:
    assert pool.run(workfns.with_context, "a", timeout=10, context=Context(1, {"a": 1})) == 1
    assert pool.run(workfns.with_context, "a", timeout=10, context=Context(1, {"a": 99})) == 1  # same version
    assert pool.run(workfns.with_context, "a", timeout=10, context=Context(2, {"a": 2})) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux-only")
def test_workers_run_under_sched_batch(pool: WorkerPool) -> None:
    worker_pid = pool.run(workfns.pid, timeout=10)
    assert os.sched_getscheduler(worker_pid) == os.SCHED_BATCH


def test_many_waiting_callers_are_all_served(pool: WorkerPool) -> None:
    """Each release wakes one waiter: with far more callers than workers, nobody is left asleep."""
    with ThreadPoolExecutor(max_workers=24) as callers:
        futures = [callers.submit(pool.run, workfns.sleep, 0.01, timeout=30, urgent=(n % 5 == 0))
                   for n in range(120)]
        assert [f.result(timeout=60) for f in futures] == ["slept"] * 120


def test_urgent_callers_go_before_waiting_ones(pool: WorkerPool) -> None:
    order: list[str] = []
    with ThreadPoolExecutor(max_workers=12) as callers:
        busy = [callers.submit(pool.run, workfns.sleep, 0.5, timeout=30) for _ in range(2)]  # occupy both
        time.sleep(0.2)
        normal = [callers.submit(lambda: (pool.run(workfns.sleep, 0, timeout=30), order.append("normal")))
                  for _ in range(4)]
        time.sleep(0.1)
        urgent = callers.submit(lambda: (pool.run(workfns.sleep, 0, timeout=30, urgent=True), order.append("urgent")))
        for future in [*busy, *normal, urgent]:
            future.result(timeout=30)
    assert order.index("urgent") <= 1, order  # served by one of the first two releases
