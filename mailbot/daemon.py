"""The daemon: sources, pipeline worker, outbox sender and scheduler in one process.

Threads and what wakes them:
- the SMTP/LMTP listener (aiosmtpd's own thread) and the IMAP source store mail and wake the worker;
- the worker runs the pipeline over pending inbound mail and wakes the sender;
- the sender delivers due outbox rows, sleeping until the next retry is due;
- the scheduler fires SLA and manager timers from the `timers` table.
SIGTERM/SIGINT stop intake, let the worker finish the message in hand, and exit 0. SIGHUP
reloads config and templates; a bad new config is reported and the old one kept.

Every part beats (`mailbot.heartbeat`): the loops as they go round, the scheduler from a job on
its own executor, the listener when its event loop and its storing thread answer a probe. The
main loop pings the systemd watchdog only while every part's beat is fresh, so a hung part
(not only a dead thread) gets the daemon restarted; STATUS= carries a one-line summary.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from mailbot import config as config_module
from mailbot import datalock, logs, mailboxes, retry, systemd
from mailbot import templates as templates_module
from mailbot.config import Config, ConfigError
from mailbot.context import Context, DatabaseUnusable, database_path, open_context
from mailbot.heartbeat import Heartbeats
from mailbot.outbox import deliver_due, make_transport, next_due
from mailbot.worker import Counts, process_pending, transient

if TYPE_CHECKING:  # imported where used: aiosmtpd and APScheduler load only when needed
    from mailbot.metrics import Metrics
    from mailbot.scheduler import TimerScheduler
    from mailbot.sources.smtp import Listener

log = logging.getLogger("mailbot")

IDLE_WAIT = 5.0  # seconds a loop sleeps when nobody wakes it (a safety net, not the path)
RETRY_WAIT = 0.5  # after a failed pass, before trying again
WAITING_CAP = 30.0  # most seconds between tries while the disk is full or the database locked
HUNG_AFTER = 60.0  # a part silent this long is hung: no more watchdog pings
STATUS_EVERY = 10.0  # seconds between STATUS= updates (sooner when a part hangs or recovers)


def run_once(ctx: Context, now: datetime | None = None) -> str:
    """Process everything pending (inbound, due timers, outbox) and return a summary line."""
    from mailbot import scheduler

    counts = process_pending(ctx, now)
    fired = scheduler.fire_due(ctx, now or datetime.now(UTC))
    transport = make_transport(ctx.cfg)
    try:
        report = deliver_due(ctx, transport, now or datetime.now(UTC))
    finally:
        transport.close()
    return (
        f"inbound: {counts.processed} processed, {counts.ignored} ignored,"
        f" {counts.quarantined} quarantined; timers: {fired} fired; outbox: {report.sent} sent,"
        f" {report.retried} deferred, {report.failed} failed"
        + (f"; waiting: {counts.waiting}" if counts.waiting else "")
    )


class CannotStart(Exception):
    """The daemon cannot start (data directory in use, a port taken); the text says why."""


class Daemon:
    def __init__(self, cfg: Config, new_database: bool = False) -> None:
        self.cfg = cfg
        self.new_database = new_database  # start even where a lost database was (--new-database)
        self.stop = threading.Event()
        self.inbound_ready = threading.Event()
        self.outbox_ready = threading.Event()
        self.reload_requested = threading.Event()
        self.threads: list[threading.Thread] = []
        self.listener: Listener | None = None
        self.scheduler: TimerScheduler | None = None
        self.lock: int | None = None
        self.metrics: Metrics | None = None
        self.heartbeats = Heartbeats()
        self.hung_after = HUNG_AFTER
        self._hung: set[str] = set()
        self._probe: concurrent.futures.Future[None] | None = None
        self._status_ctx: Context | None = None
        self._status_at = 0.0

    @property
    def beat_every(self) -> float:
        """How often an idle part looks up to beat: well within `hung_after`."""
        return min(IDLE_WAIT, self.hung_after / 3)

    def _going(self, part: str) -> bool:
        """True while the daemon runs; asking it is a sign of life of `part`."""
        self.heartbeats.beat(part)
        return not self.stop.is_set()

    def _counted(self, ctx: Context) -> Context:
        """Figures committed on this context go to the metrics (when they are served)."""
        if self.metrics is not None:
            ctx.store.tally.sink = self.metrics.record
        return ctx

    # -- loops -----------------------------------------------------------------------------

    def _refresh(self, ctx: Context) -> None:
        """Pick up a reloaded config between units of work."""
        if ctx.cfg is not self.cfg:
            ctx.cfg = self.cfg
            ctx.templates = templates_module.Templates(self.cfg.mailbot.templates)

    def worker_loop(self) -> None:
        ctx = self._counted(open_context(self.cfg, migrate=False))
        waiting: str | None = None  # what a transient failure made us wait for
        tries = 0
        try:
            while self._going("worker"):
                self.inbound_ready.wait(self.beat_every)
                self.inbound_ready.clear()
                self._refresh(ctx)
                try:
                    # A short budget: each small group commits and wakes the sender at once.
                    counts = process_pending(
                        ctx,
                        budget=0.02,
                        should_stop=lambda: not self._going("worker"),
                        on_commit=self.outbox_ready.set,
                    )
                except Exception as exc:  # e.g. the commit found the disk full
                    counts = Counts(waiting=transient(exc))
                    if not counts.waiting:
                        log.exception("worker pass failed")
                        self.stop.wait(RETRY_WAIT)
                        self.inbound_ready.set()
                        continue
                if counts.waiting:
                    # Once per episode in the log; mail stays pending, tried again with backoff.
                    if waiting != counts.waiting:
                        log.warning("waiting: %s", counts.waiting)
                    waiting, tries = counts.waiting, tries + 1
                    self._pause(retry.backoff(tries, first=1.0, cap=WAITING_CAP, jitter=0.2))
                    self.inbound_ready.set()
                    continue
                if waiting:
                    log.warning("resumed after waiting: %s", waiting)
                    waiting, tries = None, 0
                if counts.processed or counts.ignored:
                    self.outbox_ready.set()
                    if self.scheduler:
                        self.scheduler.wake()
        finally:
            ctx.close()

    def _pause(self, seconds: float) -> None:
        """Wait `seconds` (or until stopped), beating as an idle part does meanwhile."""
        deadline = time.monotonic() + seconds
        while self._going("worker") and (left := deadline - time.monotonic()) > 0:
            self.stop.wait(min(left, self.beat_every))

    def sender_loop(self) -> None:
        ctx = self._counted(open_context(self.cfg, migrate=False))
        transport = make_transport(ctx.cfg)  # kept open across passes: no reconnect per ack
        try:
            while self._going("sender"):
                if ctx.cfg is not self.cfg:
                    self._refresh(ctx)
                    transport.close()
                    transport = make_transport(ctx.cfg)
                try:
                    deliver_due(
                        ctx,
                        transport,
                        datetime.now(UTC),
                        should_stop=lambda: not self._going("sender"),
                    )
                except Exception:
                    log.exception("outbox pass failed")
                    transport.close()
                    self.stop.wait(RETRY_WAIT)
                due = next_due(ctx)
                wait = self.beat_every
                if due is not None:
                    wait = min(wait, max(0.05, (due - datetime.now(UTC)).total_seconds()))
                if not self.outbox_ready.wait(wait):
                    transport.close()  # idle: don't hold the relay's connection open
                self.outbox_ready.clear()
        finally:
            transport.close()
            ctx.close()

    # -- lifecycle -------------------------------------------------------------------------

    def _thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self) -> None:
        """Open the store and the sources; ConfigError (one line each) when they cannot be."""
        from mailbot import preflight, scheduler

        problems = preflight.problems(self.cfg)
        if problems:
            raise ConfigError(problems)
        for warning in preflight.warnings(self.cfg):
            log.warning("config", extra={"problem": warning})
        # One daemon per data directory; `restore` refuses while we hold it.
        try:
            self.lock = datalock.acquire(self.cfg.mailbot.data_dir)
        except datalock.Locked as exc:
            raise CannotStart(f"another mailbot uses this data directory ({exc})") from exc
        # Creates the data dir, secret and schema once; refuses a lost or damaged database
        # before anything listens, so no mail is answered 250 that the worker cannot process.
        try:
            open_context(self.cfg, new_database=self.new_database, check=True).close()
        except DatabaseUnusable as exc:
            datalock.release(self.lock)
            self.lock = None
            raise CannotStart(str(exc)) from exc
        db_path = database_path(self.cfg)
        if self.cfg.metrics.enabled:
            from mailbot.metrics import Metrics

            self.metrics = Metrics(db_path)
            try:
                self.metrics.serve(self.cfg.metrics.host, self.cfg.metrics.port)
            except OSError as exc:
                datalock.release(self.lock)
                self.lock = None
                raise CannotStart(
                    f"[metrics] listen {self.cfg.metrics.host}:{self.cfg.metrics.port}:"
                    f" {exc.strerror or exc}"
                ) from exc
        beats = self.heartbeats
        if self.cfg.smtp.enabled:
            from mailbot.sources.smtp import Listener

            host, port = self.cfg.smtp.host, self.cfg.smtp.port
            problem = preflight.port_problem(host, port)
            if problem:
                raise ConfigError([f"{self.cfg.path.name}: [inbound.smtp] listen: {problem}"])
            listener = Listener(self.cfg, db_path, self.inbound_ready.set)
            try:
                listener.start()
            except OSError as exc:  # taken meanwhile, or no privileges
                listener.abandon()
                problem = preflight.bind_problem(host, port, exc)
                raise ConfigError(
                    [f"{self.cfg.path.name}: [inbound.smtp] listen: {problem}"]
                ) from exc
            self.listener = listener
            beats.register("smtp", self.hung_after)
            log.info(
                "listening",
                extra={
                    "address": f"{self.cfg.smtp.host}:{self.cfg.smtp.port}",
                    "protocol": self.cfg.smtp.protocol,
                },
            )
        if self.cfg.imap.enabled:
            from mailbot.sources.imap import ImapSource

            # A connection per mailbox folder (IDLE watches the selected folder only); one,
            # the [inbound.imap] folder, without [[mailboxes]].
            folders = mailboxes.folders(self.cfg)
            for folder in folders:
                name = "imap" if len(folders) == 1 else f"imap {folder}"
                source = ImapSource(
                    self.cfg,
                    db_path,
                    self.inbound_ready.set,
                    self.stop,
                    folder,
                    beat=beats.beater(name),
                )
                # Polls, reconnect back-off and 30 s socket timeouts may keep it quiet longer.
                beats.register(name, self.hung_after + max(self.cfg.imap.poll_interval, 80.0))
                self._thread(name, source.run)
        for part in ("worker", "scheduler"):
            beats.register(part, self.hung_after)
        # One delivery to a slow relay may take a few of its socket timeouts.
        beats.register("sender", self.hung_after + 3 * self.cfg.outbound.timeout)
        self._thread("worker", self.worker_loop)
        self._thread("sender", self.sender_loop)
        self.scheduler = scheduler.TimerScheduler(
            self.cfg,
            self.outbox_ready.set,
            sink=self.metrics.record if self.metrics else None,
            on_alive=beats.beater("scheduler"),
            alive_every=self.beat_every,
        )
        self.scheduler.start()
        self.inbound_ready.set()  # mail stored while we were down

    def shutdown(self) -> None:
        systemd.notify("STOPPING=1")
        log.info("stopping")
        if self.listener is not None:
            self.listener.stop()  # no new mail first
        self.stop.set()
        self.inbound_ready.set()
        self.outbox_ready.set()
        if self.scheduler:
            self.scheduler.shutdown()
        deadline = time.monotonic() + 8
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            log.warning("threads still busy at exit", extra={"threads": ",".join(stuck)})
        if self.metrics is not None:
            self.metrics.close()
        if self._status_ctx is not None:
            self._status_ctx.close()
            self._status_ctx = None
        if self.lock is not None:
            datalock.release(self.lock)
            self.lock = None
        log.info("stopped")

    def reload(self) -> None:
        systemd.notify("RELOADING=1")
        try:
            new = config_module.load(self.cfg.path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, keeping the running config", extra={"problem": problem})
        else:
            restart_only = ("smtp", "imap", "metrics", "mailboxes", "oauth2")
            if any(getattr(new, k) != getattr(self.cfg, k) for k in restart_only):
                # The outbox sender picks up new [outbound]/[oauth2] settings at once.
                log.warning(
                    "listener, IMAP, mailbox, metrics or OAuth2 settings changed;"
                    " the listener and IMAP take them after a restart"
                )
            self.cfg = new
            if self.scheduler:
                self.scheduler.reload(new)
            self.inbound_ready.set()
            log.info("config reloaded", extra={"path": str(new.path)})
        systemd.notify("READY=1")

    def serve(self) -> int:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.stop.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        try:
            self.start()
        except CannotStart as exc:
            log.error("cannot start", extra={"problem": str(exc)})
            return 1
        systemd.notify("READY=1")
        log.info("mailbot running", extra={"data_dir": str(self.cfg.mailbot.data_dir)})
        try:
            self.supervise()
        finally:
            self.shutdown()
        return 0

    # -- watchdog --------------------------------------------------------------------------

    def supervise(self) -> None:
        """The main loop: reloads, and the watchdog round every second (or faster)."""
        ping = systemd.watchdog_interval()
        while not self.stop.wait(min(ping or 1.0, 1.0)):
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            self.watch(ping)

    def _probe_listener(self) -> None:
        """Ask the listener's event loop to run its storing thread once; then it beats.

        Only one probe is out at a time: a hung listener does not pile them up.
        """
        listener = self.listener
        if listener is None or (self._probe is not None and not self._probe.done()):
            return
        loop = getattr(listener, "loop", None)
        if loop is None or loop.is_closed():
            return
        intake = listener.intake

        async def probe() -> None:
            await intake.responds()
            self.heartbeats.beat("smtp")

        self._probe = asyncio.run_coroutine_threadsafe(probe(), loop)

    def hung_parts(self) -> dict[str, str]:
        """Parts that are dead or silent for too long, with what is known of each."""
        hung = {part: f"silent for {age:.0f} s" for part, age in self.heartbeats.stale().items()}
        hung |= {t.name: "thread ended" for t in self.threads if not t.is_alive()}
        return hung

    def watch(self, ping: float | None) -> None:
        """One watchdog round: probe, ping systemd only while every part is alive, STATUS=."""
        self._probe_listener()
        hung = self.hung_parts()
        if set(hung) != self._hung:
            if hung:
                log.error(
                    "parts not responding: no watchdog pings",
                    extra={"parts": ", ".join(f"{p} ({w})" for p, w in sorted(hung.items()))},
                )
            else:
                log.info("every part responds again")
            self._hung = set(hung)
            self._status_at = 0.0  # tell systemd at once
        if ping and not hung:
            systemd.notify("WATCHDOG=1")
        if systemd.enabled() and time.monotonic() - self._status_at >= STATUS_EVERY:
            self._status_at = time.monotonic()
            systemd.notify(f"STATUS={self.status_line(hung)}")

    def status_line(self, hung: dict[str, str]) -> str:
        """`queue 3, outbox 1 pending (0 failed), quarantine 0`, hung parts first."""
        try:
            if self._status_ctx is None:
                self._status_ctx = open_context(self.cfg, migrate=False)
            figures = self._status_ctx.store.stats.gauges(datetime.now(UTC))
        except Exception as exc:  # the status must not take the main loop down
            summary = f"figures unavailable: {exc}"
        else:
            summary = (
                f"queue {figures['unanswered']}, outbox {figures['outbox_pending']} pending"
                f" ({figures['outbox_failed']} failed), quarantine {figures['quarantined']}"
            )
        if hung:
            return f"NOT RESPONDING: {', '.join(sorted(hung))}; {summary}"
        return summary


def serve(cfg: Config, new_database: bool = False) -> int:
    logs.setup(cfg)
    return Daemon(cfg, new_database).serve()  # a ConfigError from start() is the CLI's to print
