"""Running the daemon in tests: in-process (threads) or as a real child process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailbot import config as config_module
from mailbot.daemon import Daemon
from mailbot.store import Store
from tests.helpers import ROOT, write_config
from tests.servers import Dovecot, SmtpSink, free_port


def daemon_settings(
    sink: SmtpSink | None = None, dovecot: Dovecot | None = None, **more: str
) -> dict[str, str]:
    """Config lines for a daemon on a free SMTP port, sending to `sink`, reading `dovecot`."""
    settings = {"inbound.smtp.listen": f'"127.0.0.1:{free_port()}"'}
    if sink is not None:
        settings |= {
            "outbound.transport": '"smtp"',
            "outbound.host": '"127.0.0.1"',
            "outbound.port": str(sink.port),
            "outbound.starttls": "false",
        }
    if dovecot is not None:
        settings |= {
            "inbound.imap.enabled": "true",
            "inbound.imap.host": '"127.0.0.1"',
            "inbound.imap.port": str(dovecot.port),
            "inbound.imap.tls": '"none"',
            "inbound.imap.username": f'"{dovecot.user}"',
            "inbound.imap.password_env": '"MAILBOT_TEST_IMAP_PASSWORD"',
            "inbound.imap.poll_interval": "2",
        }
        os.environ["MAILBOT_TEST_IMAP_PASSWORD"] = dovecot.password
    settings |= more
    return settings


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll `condition` every 20 ms until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


def wait_idle(store: Store, timeout: float = 10.0) -> None:
    """Wait until the daemon has nothing left to do, then return for the caller to assert.

    Idle is `Store.pending_work`: no stored mail waiting for the worker, no outbox
    row or timer due. What the daemon was going to send has then reached the relay, and
    "nothing was sent" can be asserted without sleeping "long enough".
    """
    deadline = time.monotonic() + timeout
    while True:
        left = {what: n for what, n in store.pending_work(datetime.now(UTC)).items() if n}
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon still busy after {timeout}s: {left} pending")
        time.sleep(0.01)


class InProcessDaemon:
    """The daemon's threads started in this process (no signal handling)."""

    def __init__(self, directory: Path, settings: dict[str, str], extra: str = "") -> None:
        self.config_path = write_config(directory, extra, settings)
        self.cfg = config_module.load(self.config_path)
        self.daemon = Daemon(self.cfg)
        self.store: Store | None = None

    def start(self) -> InProcessDaemon:
        self.daemon.start()
        self.store = Store(self.cfg.mailbot.data_dir / "mailbot.sqlite3", migrate=False)
        return self

    def stop(self) -> None:
        self.daemon.shutdown()
        if self.store:
            self.store.close()

    def count(self, table: str, **where: object) -> int:
        """Rows of `table` whose columns equal `where` (Store.count)."""
        assert self.store is not None
        return self.store.count(table, **where)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until the daemon has processed, fired and sent everything due (see wait_idle)."""
        assert self.store is not None
        wait_idle(self.store, timeout)

    @property
    def smtp_address(self) -> tuple[str, int]:
        return self.cfg.smtp.host, self.cfg.smtp.port


class DaemonProcess:
    """`python -m mailbot run` as a child process, with its log captured to a file."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.cfg = config_module.load(config_path)
        self.log_path = config_path.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> DaemonProcess:
        offset = len(self.log_bytes())
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(self.config_path), "run"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        if wait:
            wait_until(lambda: b"mailbot running" in self.log_bytes()[offset:], 15, "daemon start")
        return self

    def log_bytes(self) -> bytes:
        return self.log_path.read_bytes() if self.log_path.exists() else b""

    def log(self) -> str:
        return self.log_bytes().decode("utf-8", "replace")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# A fork server that has imported mailbot (and the holiday calendars config.load looks at)
# once. A daemon forked from it is a process of its own, killed for real by SIGKILL, but is up
# in a fraction of the second or so that `python -m mailbot run` spends starting Python and
# importing; the kill -9 test restarts the daemon 25 times.
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(
    [
        "tests.daemon_helpers",
        "mailbot.cli",
        "mailbot.sources.smtp",
        "holidays.countries",
    ]
)


def _run_forked(config_path: str, log_path: str) -> None:
    """The forked daemon: `mailbot --config CONFIG run` with its output going to the log."""
    from mailbot.cli import main

    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(ROOT)
    sys.exit(main(["--config", config_path, "run"]))


class ForkedDaemonProcess(DaemonProcess):
    """A DaemonProcess forked from a fork server with mailbot imported, for fast restarts.

    The daemon runs the same code from `mailbot.cli.main` on, in its own process with its own
    signal handlers. The fork server keeps the environment it started with: a test that sets
    variables for the daemon (IMAP passwords) uses DaemonProcess instead.
    """

    def __init__(self, config_path: Path) -> None:
        super().__init__(config_path)
        self.forked: multiprocessing.process.BaseProcess | None = None

    def start(self, wait: bool = True) -> ForkedDaemonProcess:
        offset = len(self.log_bytes())
        self.forked = _FORKS.Process(
            target=_run_forked, args=(str(self.config_path), str(self.log_path)), name="mailbot"
        )
        self.forked.start()
        if wait:
            wait_until(lambda: b"mailbot running" in self.log_bytes()[offset:], 15, "daemon start")
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.forked is not None and self.forked.pid is not None
        os.kill(self.forked.pid, sig)

    def kill(self) -> None:
        assert self.forked is not None
        self.forked.kill()
        self.forked.join()

    def wait(self, timeout: float) -> int:
        assert self.forked is not None
        self.forked.join(timeout)
        if self.forked.exitcode is None:
            raise subprocess.TimeoutExpired("mailbot (forked)", timeout)
        return self.forked.exitcode

    def stop(self) -> None:
        if self.forked and self.forked.is_alive():
            self.forked.terminate()
            self.forked.join(10)
            if self.forked.is_alive():
                self.forked.kill()
                self.forked.join()
