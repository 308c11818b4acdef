"""The daemon: sources, pipeline worker, outbox sender and scheduler in one process.

Threads and what wakes them:
- the SMTP/LMTP listener (aiosmtpd's own thread) and the IMAP source store mail and wake the worker;
- the worker runs the pipeline over pending inbound mail and wakes the sender;
- the sender delivers due outbox rows, sleeping until the next retry is due;
- the scheduler fires SLA and manager timers from the `timers` table.
SIGTERM/SIGINT stop intake, let the worker finish the message in hand, and exit 0. SIGHUP
reloads config and templates; a bad new config is reported and the old one kept.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from mailbot import config as config_module
from mailbot import logs, systemd
from mailbot import templates as templates_module
from mailbot.config import Config, ConfigError
from mailbot.context import Context, database_path, open_context
from mailbot.outbox import deliver_due, make_transport, next_due
from mailbot.worker import process_pending

if TYPE_CHECKING:  # imported where used: aiosmtpd and APScheduler load only when needed
    from mailbot.scheduler import TimerScheduler
    from mailbot.sources.smtp import Listener

log = logging.getLogger("mailbot")

IDLE_WAIT = 5.0  # seconds a loop sleeps when nobody wakes it (a safety net, not the path)
RETRY_WAIT = 0.5  # after a failed pass (e.g. a full disk), before trying again


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
    )


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

    # -- loops -----------------------------------------------------------------------------

    def _refresh(self, ctx: Context) -> None:
        """Pick up a reloaded config between units of work."""
        if ctx.cfg is not self.cfg:
            ctx.cfg = self.cfg
            ctx.templates = templates_module.Templates(self.cfg.mailbot.templates)

    def worker_loop(self) -> None:
        ctx = open_context(self.cfg, migrate=False)
        try:
            while not self.stop.is_set():
                self.inbound_ready.wait(IDLE_WAIT)
                self.inbound_ready.clear()
                self._refresh(ctx)
                try:
                    # A short budget: each small group commits and wakes the sender at once.
                    counts = process_pending(
                        ctx,
                        budget=0.02,
                        should_stop=self.stop.is_set,
                        on_commit=self.outbox_ready.set,
                    )
                except Exception:  # e.g. the disk is full: keep the daemon up, try again soon
                    log.exception("worker pass failed")
                    self.stop.wait(RETRY_WAIT)
                    self.inbound_ready.set()
                    continue
                if counts.processed or counts.ignored:
                    self.outbox_ready.set()
                    if self.scheduler:
                        self.scheduler.wake()
        finally:
            ctx.close()

    def sender_loop(self) -> None:
        ctx = open_context(self.cfg, migrate=False)
        transport = make_transport(ctx.cfg)  # kept open across passes: no reconnect per ack
        try:
            while not self.stop.is_set():
                if ctx.cfg is not self.cfg:
                    self._refresh(ctx)
                    transport.close()
                    transport = make_transport(ctx.cfg)
                try:
                    deliver_due(ctx, transport, datetime.now(UTC), should_stop=self.stop.is_set)
                except Exception:
                    log.exception("outbox pass failed")
                    transport.close()
                    self.stop.wait(RETRY_WAIT)
                due = next_due(ctx)
                wait = IDLE_WAIT
                if due is not None:
                    wait = min(IDLE_WAIT, max(0.05, (due - datetime.now(UTC)).total_seconds()))
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
        from mailbot import scheduler

        # Creates the data dir, secret and schema once; refuses a lost or damaged database
        # before anything listens, so no mail is answered 250 that the worker cannot process.
        open_context(self.cfg, new_database=self.new_database, check=True).close()
        db_path = database_path(self.cfg)
        if self.cfg.smtp.enabled:
            from mailbot.sources.smtp import Listener

            self.listener = Listener(self.cfg, db_path, self.inbound_ready.set)
            self.listener.start()
            log.info(
                "listening",
                extra={
                    "address": f"{self.cfg.smtp.host}:{self.cfg.smtp.port}",
                    "protocol": self.cfg.smtp.protocol,
                },
            )
        if self.cfg.imap.enabled:
            from mailbot.sources.imap import ImapSource

            source = ImapSource(self.cfg, db_path, self.inbound_ready.set, self.stop)
            self._thread("imap", source.run)
        self._thread("worker", self.worker_loop)
        self._thread("sender", self.sender_loop)
        self.scheduler = scheduler.TimerScheduler(self.cfg, self.outbox_ready.set)
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
        log.info("stopped")

    def reload(self) -> None:
        systemd.notify("RELOADING=1")
        try:
            new = config_module.load(self.cfg.path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, keeping the running config", extra={"problem": problem})
        else:
            if (new.smtp, new.imap) != (self.cfg.smtp, self.cfg.imap):
                log.warning("listener/IMAP settings changed; they take effect after a restart")
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
        self.start()
        systemd.notify("READY=1")
        log.info("mailbot running", extra={"data_dir": str(self.cfg.mailbot.data_dir)})
        ping = systemd.watchdog_interval()
        try:
            while not self.stop.wait(min(ping or 1.0, 1.0)):
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self.reload()
                if ping and all(t.is_alive() for t in self.threads):
                    systemd.notify("WATCHDOG=1")  # a dead worker means no ping: systemd restarts us
        finally:
            self.shutdown()
        return 0


def serve(cfg: Config, new_database: bool = False) -> int:
    logs.setup()
    return Daemon(cfg, new_database).serve()
