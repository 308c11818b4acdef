"""Real loopback test servers: a private Dovecot IMAP instance and an aiosmtpd sink, plus fixtures.

Nothing here is mocked: `Dovecot` runs the system's `dovecot` binary from a temporary
directory with its own generated config (no include of /etc/dovecot), and `SmtpSink` runs
an aiosmtpd `Controller` in a thread.  Both bind 127.0.0.1 only, on ports from `free_port()`,
which never hands out the same port twice in a session.

Fixtures: `dovecot` and `smtp_sink` (function scope: every test gets a fresh server and an
empty mailbox).  A whole Dovecot (certificate included) is up in ~50 ms and gone in ~10 ms,
about what giving each test a fresh user on a shared server costs (~30 ms: passwd rewrite,
reload, lookup), without tests that kill or restart the server affecting each other.
Use them from a test module with `from tests.servers import dovecot, smtp_sink`, or
register the module once with `pytest_plugins = ["tests.servers"]` in tests/conftest.py.

Simulating failures:
- `Dovecot.kill()` SIGKILLs every Dovecot process: connected clients see EOF at once, even in
  the middle of a FETCH response; `start()` brings it back on the same port with the same mail.
- `Dovecot.drop_connections()` runs `doveadm kick`: the imap processes end (clients get
  `* BYE` then EOF) while the server keeps accepting new connections.
- `Dovecot.pause()` / `resume()` SIGSTOP/SIGCONT the server: connections hang (timeouts).
- `Dovecot.reset_uidvalidity()` gives a folder a new UIDVALIDITY while keeping its messages.
- `SmtpSink.stop()` closes the port (connections refused); `start()` reopens the same port.
- `SmtpSink.fail_with(451, "...", times=2)` answers DATA with that code for the next messages.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import grp
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "Dovecot",
    "DovecotUnavailable",
    "PortAllocator",
    "SmtpDelivery",
    "SmtpSink",
    "StoredMessage",
    "dovecot",
    "find_dovecot",
    "free_port",
    "make_self_signed_cert",
    "require_dovecot",
    "smtp_sink",
]

LOOPBACK = "127.0.0.1"
DEFAULT_USER = "pomoc@4dustry.com"
DEFAULT_PASSWORD = "pomoc-test-password"
# Unprivileged account owning the test mailboxes when the tests run as root: Dovecot refuses
# to run mail processes as root, and a dedicated user keeps the files away from real users.
MAIL_SYSTEM_USER = "mailbot-test"
# Accounts the Debian package creates; created here too when missing (non-Debian installs).
INTERNAL_SYSTEM_USER = "dovecot"
LOGIN_SYSTEM_USER = "dovenull"

# Test servers listen on ports from here up to the kernel's ephemeral range (see PortAllocator).
FIRST_TEST_PORT = 20000
READY_TIMEOUT = 10.0
POLL_INTERVAL = 0.01
MASTER_EXIT_GRACE = 0.05
# Unix socket paths are limited to 108 bytes and Dovecot nests sockets a few levels below
# base_dir, so a long $TMPDIR would make the server fail in an obscure way.
MAX_TEMP_ROOT_LENGTH = 60
TlsMode = Literal["plain", "starttls", "ssl"]


class DovecotUnavailable(RuntimeError):
    """The dovecot binary is missing or cannot be run here."""


class StoredMessage(NamedTuple):
    """One message as the IMAP server holds it."""

    uid: int
    flags: tuple[str, ...]
    raw: bytes


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel picks itself: for bind(port 0) and for connect()'s source ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default; other systems use about the same range


def _listen_range() -> range:
    """Ports for test servers: outside the ephemeral range, so only an explicit bind takes one.

    Under pytest-xdist each worker takes every n-th port of the range, starting at its own
    number: workers never hand out the same port either.
    """
    low, high = _ephemeral_range()
    if low - FIRST_TEST_PORT >= 2000:
        ports = range(FIRST_TEST_PORT, low)
    elif 65536 - (high + 1) >= 2000:
        ports = range(high + 1, 65536)
    else:
        ports = range(FIRST_TEST_PORT, 65536)  # an unusual setup: the bind check has to do
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and worker[2:].isdigit() and workers > 1:
        ports = ports[int(worker[2:]) % workers :: workers]
    return ports


def _bindable(host: str, port: int) -> bool:
    # No SO_REUSEADDR: a port with a listener, or with connections still in TIME_WAIT, is
    # refused; a socket that was only bound leaves nothing behind when closed.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortAllocator:
    """Hands out TCP ports for test servers, never the same one twice in a process.

    The old way, binding port 0 and closing the socket, let the kernel give the same number
    to the next caller before the first server had bound it: two fixtures (or Dovecot's IMAP
    and IMAPS listeners) got one port, and one server failed with "duplicate listener" or
    "Address already in use".  Here every port handed out is remembered, so servers that stop
    and start again on their port (Dovecot.kill/start, SmtpSink.stop/start, a daemon killed
    and restarted) keep it to themselves for the whole session.  Ports come from below the
    kernel's ephemeral range: nobody else gets them by accident, not even as the source port
    of an outgoing connection (which could otherwise connect a client to itself on a port
    whose server is down).  Each process starts at a random place in the range so that test
    runs side by side rarely meet, and each port is checked to be bindable when handed out.
    """

    def __init__(self, ports: Sequence[int], seed: int | None = None) -> None:
        self._ports = ports
        self._next = random.Random(seed).randrange(len(ports))
        self._given: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, host: str = LOOPBACK) -> int:
        with self._lock:
            for _ in range(len(self._ports)):
                port = self._ports[self._next]
                self._next = (self._next + 1) % len(self._ports)
                if port not in self._given and _bindable(host, port):
                    self._given.add(port)
                    return port
        raise RuntimeError(f"no free TCP port left among {len(self._ports)} on {host}")


#: The session's allocator: `free_port()` returns a port no other caller got.
free_port = PortAllocator(_listen_range())


def _in_ci() -> bool:
    # Same rule as tests/conftest.py: in CI a missing server is an error, not a skip.
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _temp_root(prefix: str) -> Path:
    base = Path(tempfile.gettempdir())
    if len(str(base)) > MAX_TEMP_ROOT_LENGTH:
        base = Path("/tmp")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def make_self_signed_cert(directory: Path, name: str = "localhost") -> tuple[Path, Path] | None:
    """Write a self-signed cert/key for 127.0.0.1 and localhost; None when openssl is missing.

    The certificate doubles as its own CA file for clients.  The extensions are spelled out in
    a private openssl config so the result does not depend on the system openssl.cnf and
    passes Python 3.13's VERIFY_X509_STRICT (which wants key identifiers and key usage).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / f"{name}-openssl.cnf"
    cert = directory / f"{name}-cert.pem"
    key = directory / f"{name}-key.pem"
    config.write_text(
        "[req]\n"
        "distinguished_name = dn\n"
        "x509_extensions = v3\n"
        "prompt = no\n"
        "[dn]\n"
        "CN = localhost\n"
        "[v3]\n"
        "basicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, digitalSignature, keyCertSign\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid:always\n"
    )
    # EC keys: generating RSA-2048 costs ~10x more and the tests start many servers.
    subprocess.run(
        [
            openssl, "req", "-x509", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert), "-days", "7",
            "-config", str(config),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def find_dovecot() -> str | None:
    """Path of the dovecot binary; /usr/sbin is often missing from a non-root PATH."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_dovecot() -> str:
    """The dovecot binary, or skip the test (fail it when CI=true) if it is not installed."""
    binary = find_dovecot()
    if binary is None:
        message = (
            "dovecot is not installed: run `.ci/dovecot-install.sh` "
            "(or `apt-get install dovecot-imapd openssl`) to run the IMAP tests"
        )
        if _in_ci():
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
    return binary


def _dovecot_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", out.stdout.strip())
    if match is None:
        raise DovecotUnavailable(f"cannot parse `dovecot --version` output: {out.stdout!r}")
    return tuple(int(part) for part in match.groups() if part is not None)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """Look up a system account, creating it (root only) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    with contextlib.suppress(OSError):  # no useradd: the lookup below raises KeyError
        subprocess.run(
            [
                useradd, "--system", "--user-group", "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name,
            ],
            capture_output=True,
            check=False,
        )
    # Look again rather than trusting useradd's status: a parallel worker may have won.
    return pwd.getpwnam(name)


def _live_group_members(pgid: int) -> list[int]:
    """PIDs of the non-zombie processes in a process group.

    Zombies are ignored because orphaned Dovecot children are reparented to PID 1, which in
    some containers never reaps them; they hold no sockets and no files.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # proc(5): after "(comm)" come state, ppid, pgrp, ...; comm may contain spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _accepts_imap(host: str, port: int) -> bool:
    """True once the server greets with its capabilities.

    Dovecot accepts connections before its auth process is up and then greets with
    "* OK Waiting for authentication process to respond.."; only the capability greeting
    means a LOGIN will be answered.
    """
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            greeting = sock.makefile("rb").readline()
    except OSError:
        return False
    return greeting.startswith(b"* OK [CAPABILITY")


@dataclass(frozen=True)
class _Accounts:
    """System accounts the Dovecot processes run as."""

    internal: str
    internal_group: str
    login: str
    mail_uid: int
    mail_gid: int
    rootless: bool


class Dovecot:
    """A private Dovecot IMAP server on 127.0.0.1, one temp dir, Maildir, passwd-file users.

    Plain IMAP on `port` (STARTTLS offered) and implicit TLS on `ssl_port`, both with a
    self-signed certificate whose path is `cafile` (`ssl_port`/`cafile` are None if openssl
    is missing).  `user`/`password` are the first account; more via `users=` or `add_user()`.
    Running as root, login processes use `dovenull`, internal ones `dovecot` and mail
    processes `mailbot-test` (created with useradd when missing); not as root, every process
    runs as the current user (Dovecot's rootless mode, chroots disabled).
    """

    host = LOOPBACK

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        binary: str | None = None,
        tls: bool = True,
        oauth2_introspection_url: str | None = None,
    ) -> None:
        found = binary or find_dovecot()
        if found is None:
            raise DovecotUnavailable("dovecot binary not found")
        self.binary = found
        self.doveadm_binary = shutil.which("doveadm") or str(Path(found).with_name("doveadm"))
        self.version = _dovecot_version(found)
        self.users: dict[str, str] = dict(users or {DEFAULT_USER: DEFAULT_PASSWORD})
        self.user, self.password = next(iter(self.users.items()))
        self.root = _temp_root("mailbot-dovecot-")
        self.config_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.passwd_path = self.root / "passwd"
        self.mail_root = self.root / "mail"
        self.port = free_port()
        self.ssl_port: int | None = None
        self.cafile: str | None = None
        self._key_path: Path | None = None
        self._tls = tls
        # Set: XOAUTH2/OAUTHBEARER logins are checked with this RFC 7662 endpoint (Dovecot's
        # oauth2 passdb); passwords still work for LOGIN/PLAIN (the mailbox helpers use them).
        self.oauth2_introspection_url = oauth2_introspection_url
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports_proven = False
        self._prepared = False
        self._accounts: _Accounts | None = None
        #: Seconds the last start() took until the server answered LOGIN-ready greetings.
        self.startup_seconds: float | None = None

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (no-op if running) and wait until it is ready for LOGIN."""
        if self.running:
            return
        self._prepare()
        began = time.monotonic()
        # Another program (not this session: free_port() never repeats) can take a port before
        # Dovecot binds it; on the very first start pick new ports and retry.  After that the
        # ports are part of the contract.
        attempts = 1 if self._ports_proven else 3
        for attempt in range(attempts):
            self._write_config()
            try:
                self._launch_and_wait()
            except _PortInUse:
                if attempt + 1 == attempts:
                    raise
                self.port = free_port()
                if self.ssl_port is not None:
                    self.ssl_port = free_port()
                continue
            break
        self._ports_proven = True
        self.startup_seconds = time.monotonic() - began

    def stop(self, timeout: float = 10.0) -> None:
        """Stop all Dovecot processes and wait until the ports are released."""
        if self._proc is None:
            return
        # SIGTERM to the whole group, not just the master: the master alone waits ~1 s for
        # its log process, while every process handles SIGTERM cleanly by itself.
        self._signal_group(signal.SIGTERM)
        # A paused (SIGSTOPped) server would keep the SIGTERM pending forever.
        self._signal_group(signal.SIGCONT)
        if not self._wait_group_gone(timeout):
            self._signal_group(signal.SIGKILL)
            self._wait_group_gone(timeout)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL every Dovecot process: clients lose their connection mid-response.

        Mail survives (Maildir and Dovecot's indexes are crash safe); `start()` brings the
        server back on the same ports.
        """
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self._wait_group_gone(10.0)
        self._proc = None

    def restart(self) -> None:
        """Stop and start again: same ports, same users, same mail."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing is answered."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo `pause()`."""
        self._signal_group(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and delete its directory (mail, config, log)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        """Dovecot's log so far (startup errors included)."""
        parts = []
        for path in (self.root / "dovecot.stdout", self.log_path):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    # ----------------------------------------------------------------- accounts and clients
    def add_user(self, user: str, password: str) -> None:
        """Add an account (with its own empty mailbox); works while the server runs."""
        self.users[user] = password
        if not self._prepared:
            return
        self._write_passwd()
        if self.running:
            # The auth process re-stats passwd-file at most once a second; a reload (new
            # auth process, open IMAP sessions untouched) makes the account usable now.
            self.doveadm("reload")
            deadline = time.monotonic() + READY_TIMEOUT
            while not self._user_known(user):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot does not see new user {user!r}:\n{self.log()}")
                time.sleep(POLL_INTERVAL)

    def _user_known(self, user: str) -> bool:
        try:
            self.doveadm("user", user)
        except RuntimeError:
            return False
        return True

    def client(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        tls: TlsMode = "plain",
        timeout: float = 10.0,
    ) -> IMAPClient:
        """A logged-in IMAPClient ("plain", "starttls" or implicit "ssl"); use it in `with`."""
        user = user or self.user
        password = password if password is not None else self.users[user]
        if tls == "ssl":
            client = IMAPClient(
                self.host, self._require_ssl_port(), ssl=True,
                ssl_context=self.ssl_context(), timeout=timeout,
            )
        else:
            client = IMAPClient(self.host, self.port, ssl=False, timeout=timeout)
            if tls == "starttls":
                client.starttls(self.ssl_context())
        client.login(user, password)
        return client

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and nothing else)."""
        if self.cafile is None:
            raise DovecotUnavailable("TLS is not available (openssl missing or tls=False)")
        return ssl.create_default_context(cafile=self.cafile)

    # ----------------------------------------------------------------- mailbox helpers
    def append(
        self,
        raw: bytes,
        folder: str = "INBOX",
        flags: Sequence[str] = (),
        *,
        user: str | None = None,
        msg_time: datetime | None = None,
    ) -> int:
        """APPEND a message through IMAP; returns its UID."""
        with self.client(user) as client:
            response = client.append(folder, raw, flags=tuple(flags), msg_time=msg_time)
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response)
        if match is None:
            raise RuntimeError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(1))

    def messages(self, folder: str = "INBOX", *, user: str | None = None) -> list[StoredMessage]:
        """Every message in the folder as (uid, flags, raw), by UID, without setting \\Seen.

        \\Recent is left out of the flags.
        """
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return []
            data = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"])
        messages = []
        for uid in sorted(data):
            flags = (f.decode() if isinstance(f, bytes) else str(f) for f in data[uid][b"FLAGS"])
            # \Recent only says which session saw the message first (this one, usually):
            # noise for assertions about what the daemon did.
            kept = tuple(flag for flag in flags if flag != "\\Recent")
            messages.append(StoredMessage(uid, kept, data[uid][b"BODY[]"]))
        return messages

    def create_folder(self, name: str, *, user: str | None = None) -> None:
        """Create (and subscribe) a folder."""
        with self.client(user) as client:
            client.create_folder(name)
            client.subscribe_folder(name)

    def uidvalidity(self, folder: str = "INBOX", *, user: str | None = None) -> int:
        """The folder's UIDVALIDITY as a fresh client sees it."""
        with self.client(user) as client:
            info = client.select_folder(folder, readonly=True)
        return int(info[b"UIDVALIDITY"])

    def reset_uidvalidity(
        self, folder: str = "INBOX", *, renumber: bool = False, user: str | None = None
    ) -> int:
        """Give the folder a new, larger UIDVALIDITY, keeping its messages; returns it.

        renumber=False: `doveadm mailbox update --uid-validity` while the server runs; the
        messages keep their UIDs and sessions that have the folder selected are disconnected
        by Dovecot.  renumber=True: the server is stopped, the folder's dovecot-uidlist and
        index files are deleted and the server restarted, so Dovecot rebuilds them with a new
        UIDVALIDITY and renumbers the messages from 1 (what a rebuilt or migrated mailbox
        looks like to a client).
        """
        user = user or self.user
        old = self.uidvalidity(folder, user=user)
        if renumber:
            self._rebuild_uid_state(folder, user)
        else:
            # Larger than the old value and than anything Dovecot would itself allocate now.
            new = max(old + 1, int(time.time()))
            self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(new), folder)
        current = self.uidvalidity(folder, user=user)
        if current == old:
            raise RuntimeError(f"UIDVALIDITY of {folder!r} did not change ({old})")
        return current

    def drop_connections(self, user: str | None = None) -> None:
        """`doveadm kick`: end the user's (default: everyone's) IMAP sessions, server stays up."""
        self.doveadm("kick", user or "*")

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run doveadm against this instance; raises with its output on failure."""
        result = subprocess.run(
            [self.doveadm_binary, "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"doveadm {' '.join(args)} failed ({result.returncode}): "
                f"{result.stdout}{result.stderr}"
            )
        return result

    # ----------------------------------------------------------------- internals
    def _require_ssl_port(self) -> int:
        if self.ssl_port is None:
            raise DovecotUnavailable("IMAPS is not available (openssl missing or tls=False)")
        return self.ssl_port

    def _prepare(self) -> None:
        if self._prepared:
            return
        accounts = self._resolve_accounts()
        self._accounts = accounts
        # mkdtemp makes 0700 dirs; the unprivileged Dovecot processes must traverse it.
        self.root.chmod(0o755)
        for sub in ("state", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chown(self.mail_root, accounts.mail_uid, accounts.mail_gid)
        self.mail_root.chmod(0o700)
        if self._tls:
            pair = make_self_signed_cert(self.root / "tls")
            if pair is not None:
                cert, key = pair
                # A throwaway key: readable by the login processes, which load it under 2.4.
                key.chmod(0o644)
                self.cafile, self._key_path = str(cert), key
                self.ssl_port = free_port()
        self._write_passwd()
        self._prepared = True

    def _resolve_accounts(self) -> _Accounts:
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.getuid())
            return _Accounts(me.pw_name, _group_name(me.pw_gid), me.pw_name,
                             me.pw_uid, me.pw_gid, rootless=True)
        internal = _ensure_system_user(INTERNAL_SYSTEM_USER)
        _ensure_system_user(LOGIN_SYSTEM_USER)
        try:
            mail = _ensure_system_user(MAIL_SYSTEM_USER)
        except KeyError:
            # No useradd (minimal image): nobody still is not root, which is what matters.
            mail = pwd.getpwnam("nobody")
        return _Accounts(INTERNAL_SYSTEM_USER, _group_name(internal.pw_gid), LOGIN_SYSTEM_USER,
                         mail.pw_uid, mail.pw_gid, rootless=False)

    def _write_passwd(self) -> None:
        assert self._accounts is not None
        uid, gid = self._accounts.mail_uid, self._accounts.mail_gid
        lines = []
        for user, password in self.users.items():
            if any(ch in user + password for ch in ":\n"):
                raise ValueError(f"passwd-file cannot hold {user!r} / its password")
            home = self.mail_root / user
            lines.append(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
        tmp = self.passwd_path.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        tmp.chmod(0o644)
        # Atomic swap so the auth process never reads a half-written file.
        tmp.replace(self.passwd_path)

    def _write_config(self) -> None:
        assert self._accounts is not None
        renderer = _config_2_4 if self.version >= (2, 4) else _config_2_3
        self.config_path.write_text(renderer(self, self._accounts))
        if self.oauth2_introspection_url and self.version < (2, 4):
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                "introspection_mode = post\n"
                f"introspection_url = {self.oauth2_introspection_url}\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
            )

    def _launch_and_wait(self) -> None:
        # A stale pid file naming a live (reused) pid makes Dovecot refuse to start.
        (self.root / "run" / "master.pid").unlink(missing_ok=True)
        log_offset = len(self.log())
        stdout = (self.root / "dovecot.stdout").open("ab")
        try:
            # -F: stay in the foreground so we own the master; own session so that the
            # whole server (master and children) can be signalled as one process group.
            proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            stdout.close()
        self._proc = proc
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc = None
                self._wait_group_gone(5.0, pgid=proc.pid)
                log = self.log()
                if "Address already in use" in log[log_offset:]:
                    raise _PortInUse(log)
                raise DovecotUnavailable(f"dovecot exited with {proc.returncode}:\n{log}")
            if _accepts_imap(self.host, self.port):
                return
            time.sleep(POLL_INTERVAL)
        self.kill()
        raise DovecotUnavailable(f"dovecot not ready after {READY_TIMEOUT}s:\n{self.log()}")

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def _wait_group_gone(self, timeout: float, pgid: int | None = None) -> bool:
        proc = self._proc
        pgid = pgid if pgid is not None else (proc.pid if proc else None)
        if pgid is None:
            return True
        deadline = time.monotonic() + timeout
        orphaned_since: float | None = None
        while True:
            now = time.monotonic()
            # proc.poll() also reaps the master, our direct child.
            master_alive = proc is not None and proc.poll() is None
            members = _live_group_members(pgid)
            if not master_alive and not members:
                return True
            if master_alive and proc is not None and members == [proc.pid]:
                # All children are gone, yet the master sometimes idles in a shutdown timer
                # for 0.1-1 s; with nothing left to supervise, ending it loses nothing.
                orphaned_since = orphaned_since or now
                if now - orphaned_since > MASTER_EXIT_GRACE:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
            if now > deadline:
                return False
            if master_alive and proc is not None:
                # Waiting on the master instead of sleeping returns the moment it exits.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(POLL_INTERVAL)
            else:
                time.sleep(POLL_INTERVAL)

    def _rebuild_uid_state(self, folder: str, user: str) -> None:
        was_running = self.running
        self.start()  # the path lookup goes through the running auth service
        path = self.doveadm("mailbox", "path", "-u", user, folder).stdout.strip()
        self.stop()
        mailbox_dir = Path(path)
        # The folder's UID map and index, plus the mailbox-list index in the Maildir root,
        # which caches every folder's UIDVALIDITY for STATUS.
        stale = [mailbox_dir / "dovecot-uidlist", *mailbox_dir.glob("dovecot.index*")]
        stale += (self.mail_root / user / "Maildir").glob("dovecot.list.index*")
        for file in stale:
            file.unlink(missing_ok=True)
        # Dovecot allocates the new value from ~/Maildir/dovecot-uidvalidity (kept above),
        # which it guarantees to increase.
        self.start()
        if not was_running:
            self.stop()


class _PortInUse(DovecotUnavailable):
    """Dovecot could not bind a port picked by free_port()."""


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name


def _common_head(server: Dovecot, accounts: _Accounts) -> str:
    return (
        f"base_dir = {server.root / 'run'}\n"
        f"state_dir = {server.root / 'state'}\n"
        f"log_path = {server.log_path}\n"
        "protocols = imap\n"
        # Global listen: every listener binds loopback only (2.3 and 2.4 spell the
        # per-listener address differently; the global one is the same in both).
        f"listen = {LOOPBACK}\n"
        f"default_internal_user = {accounts.internal}\n"
        f"default_internal_group = {accounts.internal_group}\n"
        f"default_login_user = {accounts.login}\n"
        # System accounts have small uids; the default (500) would reject mailbot-test.
        "first_valid_uid = 1\n"
        "first_valid_gid = 1\n"
        # A failed login is answered after up to 2 s by default (0.5 s with this: Dovecot
        # flushes failures on a timer); tests of bad credentials need no brute-force brake.
        "auth_failure_delay = 0\n"
        + "auth_mechanisms = plain login"
        + (" xoauth2 oauthbearer\n" if server.oauth2_introspection_url else "\n")
    )


def _common_tail(server: Dovecot, accounts: _Accounts) -> str:
    ssl_port = server.ssl_port if server.ssl_port is not None else 0  # port 0 = disabled
    # chroot() needs root; rootless Dovecot runs the normally chrooted services without one.
    no_chroot = "  chroot =\n" if accounts.rootless else ""
    return (
        "namespace inbox {\n"
        "  inbox = yes\n"
        "}\n"
        "service imap-login {\n"
        "  inet_listener imap {\n"
        f"    port = {server.port}\n"
        "  }\n"
        "  inet_listener imaps {\n"
        f"    port = {ssl_port}\n"
        "    ssl = yes\n"
        "  }\n"
        f"{no_chroot}"
        "}\n"
        "service anvil {\n"
        # Without this socket the auth process skips its per-IP penalty, which delays every
        # login from an address after a failed one by 2-15 s (Dovecot's documented switch).
        "  unix_listener anvil-auth-penalty {\n"
        "    mode = 0\n"
        "  }\n"
        f"{no_chroot}"
        "}\n"
        + ("service ipc {\n  chroot =\n}\n" if accounts.rootless else "")
    )


def _config_2_3(server: Dovecot, accounts: _Accounts) -> str:
    ssl_lines = (
        f"ssl = yes\nssl_cert = <{server.cafile}\nssl_key = <{server._key_path}\n"
        if server.cafile
        else "ssl = no\n"
    )
    return (
        "# Generated by tests/servers.py for one test server (Dovecot 2.3 syntax).\n"
        + _common_head(server, accounts)
        + "disable_plaintext_auth = no\n"
        + "auth_verbose = yes\n"
        + ssl_lines
        + "mail_location = maildir:~/Maildir\n"
        + _oauth2_passdb_2_3(server)
        + "passdb {\n"
        + "  driver = passwd-file\n"
        + ("  mechanisms = plain login\n" if server.oauth2_introspection_url else "")
        + f"  args = scheme=PLAIN username_format=%u {server.passwd_path}\n"
        + "}\n"
        + "userdb {\n"
        + "  driver = passwd-file\n"
        + f"  args = username_format=%u {server.passwd_path}\n"
        + "}\n"
        + _common_tail(server, accounts)
    )


def _oauth2_passdb_2_3(server: Dovecot) -> str:
    if not server.oauth2_introspection_url:
        return ""
    return (
        "passdb {\n"
        "  driver = oauth2\n"
        "  mechanisms = xoauth2 oauthbearer\n"
        f"  args = {server.root / 'dovecot-oauth2.conf.ext'}\n"
        "}\n"
    )


def _config_2_4(server: Dovecot, accounts: _Accounts) -> str:
    # Written from the 2.3 -> 2.4 upgrade notes; not exercised on this project's machines,
    # which have 2.3 (Debian 12).  Debian 13 ships 2.4.
    ssl_lines = (
        f"ssl = yes\nssl_server_cert_file = {server.cafile}\n"
        f"ssl_server_key_file = {server._key_path}\n"
        if server.cafile
        else "ssl = no\n"
    )
    return (
        # Must be the first settings in the file.
        "dovecot_config_version = 2.4.0\n"
        "dovecot_storage_version = 2.4.0\n"
        "# Generated by tests/servers.py for one test server (Dovecot 2.4 syntax).\n"
        + _common_head(server, accounts)
        + "auth_allow_cleartext = yes\n"
        + ssl_lines
        + "mail_driver = maildir\n"
        + "mail_path = ~/Maildir\n"
        + "passdb passwd-file {\n"
        + f"  passwd_file_path = {server.passwd_path}\n"
        + "}\n"
        + "userdb passwd-file {\n"
        + f"  passwd_file_path = {server.passwd_path}\n"
        + "}\n"
        + _oauth2_2_4(server)
        + _common_tail(server, accounts)
    )


def _oauth2_2_4(server: Dovecot) -> str:
    # 2.4 checks XOAUTH2/OAUTHBEARER tokens with the global oauth2 settings, no passdb
    # (written from the 2.4 documentation, like the rest of this config not exercised here).
    if not server.oauth2_introspection_url:
        return ""
    return (
        "oauth2 {\n"
        "  introspection_mode = post\n"
        f"  introspection_url = {server.oauth2_introspection_url}\n"
        "  force_introspection = yes\n"
        "  username_attribute = username\n"
        "  active_attribute = active\n"
        "  active_value = true\n"
        "}\n"
    )


# =========================================================================== SMTP sink


@dataclass(frozen=True)
class SmtpDelivery:
    """One message the sink accepted (or rejected, see `SmtpSink.rejected`)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    peer: str
    auth_user: str | None
    tls: bool
    mail_options: tuple[str, ...] = ()  # e.g. BODY=8BITMIME

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self._sink._on_data(session, envelope)


class _XOAuth2SinkHandler(_SinkHandler):
    """Adds AUTH XOAUTH2 (aiosmtpd calls `auth_<MECHANISM>` hooks of the handler)."""

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            blob = args[1]
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)  # "*": aborted, answered
            blob = base64.b64encode(answer).decode()
        try:
            fields = base64.b64decode(blob, validate=True).decode().split("\x01")
            user = fields[0].removeprefix("user=")
            token = next(f for f in fields if f.startswith("auth=Bearer ")).split(" ", 1)[1]
        except (ValueError, StopIteration, UnicodeDecodeError):
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 Malformed XOAUTH2 response"
            )
        assert self._sink.xoauth2 is not None
        if self._sink.xoauth2(user, token):
            return AuthResult(success=True, auth_data=user)
        # As Gmail does (RFC 7628): the error as a JSON challenge, an empty reply, then 535.
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"})
        await server.challenge_auth(error)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and token not accepted"
        )


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts.

    AUTH PLAIN/LOGIN is offered without TLS (loopback only) and checked against
    `username`/`password`; `auth_required=True` makes it mandatory.  STARTTLS is offered with
    a self-signed certificate (`cafile`) when openssl is available. With `xoauth2=check`,
    AUTH XOAUTH2 is offered too and `check(user, bearer_token)` says whether to accept.
    """

    host = LOOPBACK

    def __init__(
        self,
        *,
        username: str = "mailbot",
        password: str = "sink-password",
        auth_required: bool = False,
        tls: bool = True,
        xoauth2: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.xoauth2 = xoauth2
        self.username = username
        self.password = password
        self.auth_required = auth_required
        self.port = free_port()
        self.cafile: str | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._tls_dir: Path | None = None
        if tls:
            self._tls_dir = _temp_root("mailbot-smtp-")
            pair = make_self_signed_cert(self._tls_dir)
            if pair is not None:
                cert, key = pair
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(cert, key)
                self._tls_context, self.cafile = context, str(cert)
        self._lock = threading.Lock()
        self._messages: list[SmtpDelivery] = []
        self._rejected: list[tuple[SmtpDelivery, str]] = []
        self._next_responses: list[str] = []
        self._controller: Controller | None = None
        self._port_proven = False
        self.startup_seconds: float | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Listen (again) on `port`; no-op if already running."""
        if self._controller is not None:
            return
        began = time.monotonic()
        attempts = 1 if self._port_proven else 3
        for attempt in range(attempts):
            # A stopped Controller closed its event loop, so every start needs a new one.
            controller = Controller(
                (_XOAuth2SinkHandler if self.xoauth2 else _SinkHandler)(self),
                hostname=self.host,
                port=self.port,
                # Without it aiosmtpd calls socket.getfqdn(), a DNS lookup that can stall.
                server_hostname="sink.test",
                ready_timeout=READY_TIMEOUT,
                tls_context=self._tls_context,
                authenticator=self._authenticate,
                auth_required=self.auth_required,
                # Loopback test server: AUTH without TLS is what the daemon is tested with.
                auth_require_tls=False,
                decode_data=False,
            )
            try:
                controller.start()
            except OSError:
                if attempt + 1 == attempts:
                    raise
                self.port = free_port()
                continue
            self._controller = controller
            break
        self._port_proven = True
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Close the port: new connections are refused until `start()`."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)

    # ----------------------------------------------------------------- inspection
    @property
    def messages(self) -> list[SmtpDelivery]:
        """Accepted messages so far, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._messages)

    @property
    def rejected(self) -> list[tuple[SmtpDelivery, str]]:
        """Messages answered with a `next_responses`/`fail_with` reply, with that reply."""
        with self._lock:
            return list(self._rejected)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._rejected.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[SmtpDelivery]:
        """Wait until at least `count` messages were accepted; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if len(messages) >= count:
                return messages
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} message(s) within {timeout}s, got {len(messages)}"
                )
            time.sleep(POLL_INTERVAL)

    # ----------------------------------------------------------------- failure injection
    @property
    def next_responses(self) -> list[str]:
        """Replies ("451 4.3.0 Try later") used for the next DATA commands, in order."""
        with self._lock:
            return list(self._next_responses)

    @next_responses.setter
    def next_responses(self, responses: Sequence[str]) -> None:
        for response in responses:
            _check_reply(response)
        with self._lock:
            self._next_responses = list(responses)

    def fail_with(self, code: int, text: str = "Simulated failure", times: int = 1) -> None:
        """Answer DATA of the next `times` messages with `code` (4xx or 5xx) and `text`."""
        if not 400 <= code <= 599:
            raise ValueError(f"fail_with needs a 4xx or 5xx code, not {code}")
        reply = f"{code} {text}"
        _check_reply(reply)
        with self._lock:
            self._next_responses.extend([reply] * times)

    # ----------------------------------------------------------------- aiosmtpd callbacks
    def _on_data(self, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        peer = session.peer
        delivery = SmtpDelivery(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            auth_user=session.auth_data if isinstance(session.auth_data, str) else None,
            tls=session.ssl is not None,
            mail_options=tuple(envelope.mail_options),
        )
        with self._lock:
            if self._next_responses:
                reply = self._next_responses.pop(0)
                self._rejected.append((delivery, reply))
                return reply
            self._messages.append(delivery)
        return "250 2.0.0 Message accepted for delivery"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if mechanism not in {"PLAIN", "LOGIN"} or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = data.login.decode("utf-8", "replace")
        password = data.password.decode("utf-8", "replace")
        if login == self.username and password == self.password:
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)


def _check_reply(reply: str) -> None:
    if not re.fullmatch(r"[45]\d\d [^\r\n]*", reply):
        raise ValueError(f"not a single-line 4xx/5xx SMTP reply: {reply!r}")


# =========================================================================== fixtures


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A fresh private Dovecot with an empty mailbox for `DEFAULT_USER`.

    Skips when dovecot is not installed, fails instead when CI=true.
    """
    with running_dovecot() as server:
        yield server


@contextlib.contextmanager
def running_dovecot(**settings: Any) -> Iterator[Dovecot]:
    """A started Dovecot (`settings` as for `Dovecot`), closed after; its log printed, which
    pytest shows only when the test fails: the server side of the story."""
    server = Dovecot(binary=require_dovecot(), **settings)
    try:
        server.start()
        yield server
    finally:
        print(f"--- dovecot log ({server.root}) ---\n{server.log()[-4000:]}")
        server.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP sink that collects messages; `stop()`/`fail_with()` simulate trouble."""
    with SmtpSink() as sink:
        yield sink

