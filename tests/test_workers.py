"""The worker pool: wall-clock kills, dead workers, contexts, scheduling policy."""

from __future__ import annotations

import os
import sys

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
