"""APScheduler 3.x jobs for `monitor run`; each job is wrapped so one failure is logged, never fatal."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from monitor.api.context import Heartbeat
from monitor.api.server import ListenError
from monitor.service import Service
from monitor.store.feedstate import release_all_leases

log = logging.getLogger(__name__)


def guarded(name: str, job: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            job()
        except Exception:  # the job wrapper: record and keep the scheduler alive
            log.exception("event=job_failed job=%s", name)

    run.__name__ = f"job_{name}"
    return run


class _SkippedTick(logging.Filter):
    """APScheduler warns each time a job's tick comes while its previous run still goes on. Every job here
    is `max_instances=1` on purpose (a poll round of many feeds outlasts `poll_tick`; nothing is lost: the
    running round takes what is due), so that is logged at DEBUG, not as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "maximum number of running instances" in str(record.msg):
            job = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            log.debug("event=tick_skipped job_still_running=%s", job)
            return False
        return True


def quiet_skipped_ticks() -> None:
    """Install the filter on APScheduler's logger (once)."""
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkippedTick) for f in scheduler_log.filters):
        scheduler_log.addFilter(_SkippedTick())


DELIVER_TICK = 5.0  # seconds between two looks at a destination's outbox rows (at most; MONITOR_POLL_TICK if less)


def deliver_round(service: Service, report: Callable[[str], None], destination: str) -> None:
    """Send one destination's alerts that are due (new matches, retries whose time has come); the console
    destination prints them with ``report``."""
    summary = service.deliver(report, destination)
    if summary.sent or summary.errors:
        log.info("event=deliver_round destination=%s sent=%d retrying=%d failed=%d dead=%d", destination,
                 summary.sent, summary.retrying, summary.failed, summary.dead)


def digest_round(service: Service, report: Callable[[str], None], destination: str) -> None:
    """Open the destination's digest when its period has ended and send it (and any retry that is due)."""
    summary = service.send_digests(report, destination)
    if summary.sent or summary.errors:
        log.info("event=digest_round destination=%s sent=%d retrying=%d failed=%d dead=%d", destination,
                 summary.sent, summary.retrying, summary.failed, summary.dead)


def health_round(service: Service, report: Callable[[str], None]) -> None:
    """Store feed- and rule-health changes and send their notices (to the console output with ``report``
    unless MONITOR_HEALTH_DESTINATION names a destination)."""
    summary = service.check_health(report)
    if summary.sent or summary.errors:
        log.info("event=health_round sent=%d retrying=%d failed=%d dead=%d", summary.sent, summary.retrying,
                 summary.failed, summary.dead)


def _reload(service: Service, requested: threading.Event) -> None:
    """Reload the rules when their files changed, or unconditionally after SIGHUP."""
    force = requested.is_set()
    requested.clear()
    service.reload_rules(force)


def run_service(service: Service, report: Callable[[str], None] = print, serve_api: bool = True) -> None:
    """Poll due feeds every `poll_tick` seconds, send each destination's due alerts and digests and the
    feed-health notices every few seconds, prune old unmatched entries every `housekeeping_interval`, and
    serve the API, until SIGTERM/SIGINT: no job starts after that, and running ones get `shutdown_grace`
    seconds to finish. The rules directory is checked for changes every `rules_reload_interval` seconds;
    after SIGHUP the next check reloads it whether or not it changed."""
    if service.db.is_sqlite:  # one process per SQLite file: leases still held belong to a process that died
        released = release_all_leases(service.db)
        if released:
            log.warning("event=feed_leases_released feeds=%d reason=previous_process_gone", released)
    scheduler = BlockingScheduler(timezone=UTC)
    quiet_skipped_ticks()
    scheduler.add_job(
        guarded("poll", service.poll_due),
        "interval",
        seconds=service.settings.poll_tick,
        next_run_time=datetime.now(UTC),
        id="poll",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(60, int(service.settings.poll_tick * 2)),
    )

    # One delivery job per destination, apart from polling and from each other: a slow SMTP server, Slack's
    # pace of one message a second or a 429 never hold up polls or another destination. A digest
    # destination's job looks every few seconds whether its period has ended (cron in its time zone): a
    # digest is opened once per period, so a service that was down sends it when it is back.
    for destination in service.destinations.items:
        job = deliver_round if destination.mode == "immediate" else digest_round
        scheduler.add_job(
            guarded(f"deliver-{destination.name}", partial(job, service, report, destination.name)),
            "interval",
            seconds=min(DELIVER_TICK, service.settings.poll_tick),
            next_run_time=datetime.now(UTC),
            id=f"deliver-{destination.name}",
            max_instances=1,
            coalesce=True,
        )

    scheduler.add_job(
        guarded("health", partial(health_round, service, report)),
        "interval",
        seconds=min(DELIVER_TICK, service.settings.poll_tick),
        id="health",
        max_instances=1,
        coalesce=True,
    )
    housekeeping = service.settings.housekeeping_interval
    scheduler.add_job(
        guarded("housekeeping", service.housekeep),
        "interval",
        seconds=housekeeping,
        next_run_time=datetime.now(UTC) + timedelta(seconds=min(housekeeping, 60)),
        id="housekeeping",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=int(housekeeping),
    )

    reload_requested = threading.Event()
    scheduler.add_job(
        guarded("rules", lambda: _reload(service, reload_requested)),
        "interval",
        seconds=service.settings.rules_reload_interval,
        id="rules",
        max_instances=1,
        coalesce=True,
    )

    def hangup(_signum: int, _frame: FrameType | None) -> None:
        log.info("event=rules_reload_requested signal=SIGHUP")
        reload_requested.set()

    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():  # a second signal while draining: already on the way out
            log.info("event=shutdown_pending signal=%s", signal.Signals(signum).name)
            return
        stopping.set()
        log.info("event=shutdown signal=%s", signal.Signals(signum).name)
        service.poller.stop()
        scheduler.shutdown(wait=False)

    # /readyz calls the scheduler stalled when this job has not run for a while
    heartbeat = Heartbeat(stale=max(60.0, 3 * service.settings.poll_tick))
    scheduler.add_job(heartbeat.beat, "interval", seconds=min(DELIVER_TICK, service.settings.poll_tick),
                      id="heartbeat", max_instances=1, coalesce=True)
    api = None
    if serve_api and service.settings.api_serve:
        try:
            api = service.start_api(heartbeat)
            report(api.announce())
        except ListenError as exc:  # alerts matter more than the page: say so loudly and go on without it
            log.error("event=api_not_served error=%s", exc)
            report(f"monitor: the API and web page are not served: {exc}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)
    log.info("event=scheduler_start poll_tick=%.1fs", service.settings.poll_tick)
    try:
        scheduler.start()
        drained = _drain(scheduler, service.settings.shutdown_grace)
    finally:
        if api is not None:
            api.stop()
    if not drained:
        # Whatever is still running is safe to abandon: a poll stores a feed in one transaction (not
        # committed: polled again), a claimed delivery returns to the pool when its lease runs out.
        log.warning("event=shutdown_grace_exceeded grace=%.0fs", service.settings.shutdown_grace)
        logging.shutdown()
        os._exit(0)
    log.info("event=scheduler_stopped")


def _drain(scheduler: BlockingScheduler, grace: float) -> bool:
    """Let in-flight jobs finish (a poll commits its feeds, a send marks its row) for up to ``grace``
    seconds; False when they did not."""
    def wait_all() -> None:
        for executor in scheduler._executors.values():
            executor.shutdown(wait=True)

    waiter = threading.Thread(target=wait_all, name="drain", daemon=True)
    waiter.start()
    waiter.join(grace)
    return not waiter.is_alive()
