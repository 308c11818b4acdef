"""The systemd watchdog: pinged only while every part of the daemon is alive and responding."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pytest

from mailbot import daemon as daemon_module
from mailbot.worker import Counts
from tests.daemon_helpers import InProcessDaemon, daemon_settings, wait_until


class NotifySocket:
    """What systemd listens on: a datagram socket that collects sd_notify messages."""

    def __init__(self) -> None:
        self.name = f"@mailbot-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.1)

    def receive(self, seconds: float) -> list[str]:
        """Every message that arrives within `seconds`."""
        deadline, got = time.monotonic() + seconds, []
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return got

    def wait_for(self, predicate, seconds: float = 30.0) -> str:  # generous: a loaded CI machine
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.receive(0.1):
                if predicate(message):
                    return message
        raise AssertionError("no such notification")


def _hang_scheduler(running: InProcessDaemon, release: threading.Event) -> None:
    # A timer handler that never returns holds the scheduler's one executor thread.
    running.daemon.scheduler.scheduler.add_job(release.wait, id="stuck-timer")


def _hang_listener(running: InProcessDaemon, release: threading.Event) -> None:
    # The listener's storing thread stuck (a commit that never ends): SMTP clients would hang.
    running.daemon.listener.intake._executor.submit(release.wait)


@pytest.mark.parametrize("part", ["scheduler", "worker", "smtp"])
def test_a_hung_part_stops_the_watchdog_pings_until_it_recovers(
    tmp_path, smtp_sink, monkeypatch, part
) -> None:
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.name)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # ping every 0.15 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    release = threading.Event()
    if part == "worker":  # the pipeline stuck on one message: the thread lives, does nothing

        def stuck(*args, **kwargs) -> Counts:
            release.wait()
            return Counts()

        monkeypatch.setattr(daemon_module, "process_pending", stuck)
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink))
    running.daemon.hung_after = 1.5
    running.start()
    supervisor = threading.Thread(target=running.daemon.supervise)
    supervisor.start()
    try:
        if part != "worker":
            status = notify.wait_for(lambda m: m.startswith("STATUS="))
            assert status == "STATUS=queue 0, outbox 0 pending (0 failed), quarantine 0"
            notify.wait_for(lambda m: m == "WATCHDOG=1")
            {"scheduler": _hang_scheduler, "smtp": _hang_listener}[part](running, release)
        hung = notify.wait_for(lambda m: "NOT RESPONDING" in m)
        assert hung.startswith(f"STATUS=NOT RESPONDING: {part};")
        assert "WATCHDOG=1" not in notify.receive(1.0)  # systemd will restart us
        release.set()
        notify.wait_for(lambda m: m == "WATCHDOG=1")  # alive again: pings resume
        assert "NOT RESPONDING" not in notify.wait_for(lambda m: m.startswith("STATUS="))
    finally:
        release.set()
        running.stop()
        supervisor.join(5)
        notify.sock.close()


def test_a_healthy_idle_daemon_keeps_pinging(tmp_path, smtp_sink, monkeypatch) -> None:
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.name)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink))
    running.daemon.hung_after = 1.0
    running.start()
    supervisor = threading.Thread(target=running.daemon.supervise)
    supervisor.start()
    try:
        got = notify.receive(3.0)  # twice hung_after with nothing to do: idle is not hung
        pings = got.count("WATCHDOG=1")
        assert pings >= 10 and not any("NOT RESPONDING" in m for m in got)
        wait_until(lambda: running.daemon.hung_parts() == {}, 1)
    finally:
        running.stop()
        supervisor.join(5)
        notify.sock.close()
