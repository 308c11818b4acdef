"""Checks beyond the config file itself: can we listen and write where it says, and what to warn of.

`check-config` prints both lists; the daemon refuses to start on a problem and logs warnings.
Problems read like config errors (`config.toml: [section] key: problem`) so the admin knows which
setting to change. Nothing here binds the configured port (a running daemon may hold it): the
listen address is resolved, and each of its addresses is bound once on a throwaway port to learn
whether it belongs to this machine.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from mailbot.config import Config


def _line(cfg: Config, section: str, key: str, text: str) -> str:
    return f"{cfg.path.name}: [{section}] {key}: {text}"


def problems(cfg: Config) -> list[str]:
    """What will stop `mailbot run` although the file itself is valid."""
    found = []
    data_dir = data_dir_problem(cfg.mailbot.data_dir)
    if data_dir:
        found.append(_line(cfg, "mailbot", "data_dir", data_dir))
    if cfg.smtp.enabled:
        listen = listen_problem(cfg.smtp.host, cfg.smtp.port)
        if listen:
            found.append(_line(cfg, "inbound.smtp", "listen", listen))
    return found


def warnings(cfg: Config) -> list[str]:
    """Settings that work but probably do not mean what the admin meant."""
    found = []
    day = _business_day_seconds(cfg)
    first = cfg.sla.first_response
    if not first.business_days and day and first.seconds >= day:
        # "48 hours" is business time inside opening hours, not two calendar days.
        days = first.seconds / day
        hours = first.seconds / 3600
        found.append(
            _line(
                cfg,
                "sla",
                "first_response",
                f"warning: {first} is {hours:g} business hours, counted inside opening hours"
                f" ({cfg.hours.opens:%H:%M}–{cfg.hours.closes:%H:%M}): {days:.3g} business days."
                + (
                    f' Write "{hours / 24:g} business days" if you meant {hours:g} hours'
                    " on the clock."
                    if hours % 24 == 0
                    else ""
                ),
            )
        )
    return found


def _business_day_seconds(cfg: Config) -> int:
    opens, closes = cfg.hours.opens, cfg.hours.closes
    return (closes.hour * 3600 + closes.minute * 60) - (opens.hour * 3600 + opens.minute * 60)


def data_dir_problem(path: Path) -> str | None:
    """Why the daemon could not create or write `path`, or None."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{path}: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = (
            "not writable"
            if existing == path
            else f"cannot be created ({existing} is not writable)"
        )
        return f"{path}: {what} by this user (uid {os.geteuid()})"
    return None


def listen_problem(host: str, port: int) -> str | None:
    """Why the SMTP listener could not listen on host:port (besides the port being taken)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r} ({exc.strerror})"
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.bind((address[0], 0, *address[2:]))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{address[0]} is not an address of this machine"
            return f"cannot listen on {address[0]}: {exc.strerror or exc}"
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why host:port cannot be listened on right now (taken, say), or None.

    Only for `run`, just before the listener starts: aiosmtpd reports a failed bind only after
    its ready timeout (seconds); binding here first (with SO_REUSEADDR, as asyncio does) says
    at once.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as exc:
        return bind_problem(host, port, exc)
    return None


def bind_problem(host: str, port: int, exc: BaseException) -> str:
    """The one line an admin reads when binding host:port failed."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host!r} ({exc.strerror})"
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return f"{where}: address already in use (is another mailbot or MTA listening?)"
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"{where}: {host} is not an address of this machine"
        if exc.errno == errno.EACCES:
            return f"{where}: permission denied (ports below 1024 need privileges)"
        return f"cannot listen on {where}: {os.strerror(exc.errno) if exc.errno else exc}"
    return f"cannot listen on {where}: {exc}"
