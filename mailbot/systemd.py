"""systemd integration without dependencies: sd_notify readiness, watchdog and status messages."""

from __future__ import annotations

import os
import socket


def enabled() -> bool:
    """True when run by systemd with a notification socket (Type=notify)."""
    return bool(os.environ.get("NOTIFY_SOCKET"))


def notify(message: str) -> bool:
    """Send one sd_notify message (e.g. 'READY=1'); False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None
