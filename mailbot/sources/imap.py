"""IMAP source: fetch new mail by UID, store it, and only then flag or move it on the server.

`(folder, UIDVALIDITY, last UID)` is kept in the `imap_state` table in the same transaction as
the stored messages. Mail the daemon stored is marked with the keyword `$MailbotStored` (and
\\Seen) or moved to `processed_folder`; a crash between commit and flagging only means the flag
is set on the next pass. After a UIDVALIDITY change the folder is rescanned and intake's
content hash keeps anything from being stored twice.

A dead connection is noticed within seconds, not at the next poll: a socket that turns readable
without a response (the server closed it) or a server silent during IDLE for `IDLE_QUIET` ends
IDLE with a NOOP, which fails on a dead connection; TCP keepalive finds peers that vanished
without closing; IDLE is re-issued every `IDLE_MAX` (servers drop it after 30 minutes).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from imapclient import IMAPClient

from mailbot import retry
from mailbot.config import Config, ImapInbound
from mailbot.intake import accept
from mailbot.signin import imap_login, imap_tokens
from mailbot.store import Store

log = logging.getLogger("mailbot.imap")

STORED = b"$MailbotStored"
FETCH_BYTES = 16 * 1024 * 1024  # fetch in batches of about this many bytes
IDLE_MAX = 10 * 60  # re-issue IDLE this often, well before servers' 30-minute timeout
IDLE_QUIET = 120.0  # seconds without a word from the server during IDLE before a NOOP
# TCP keepalive: probe after 60 s without traffic, every 10 s; 3 unanswered: the peer is gone.
KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}


def reconnect_delay(failures: int) -> float:
    """1 s, 2 s, 4 s … up to 15 s, ±30 %: mail flows again soon after the server returns."""
    return retry.backoff(failures, first=1.0, cap=15.0, jitter=0.3)


class ImapSource:
    """Keeps one folder of one IMAP account drained into the inbound table.

    `folder`: the folder to watch (default `[inbound.imap] folder`). Mailboxes with folders of
    their own each get a source: an IMAP connection IDLEs on one selected folder only.
    """

    def __init__(
        self,
        cfg: Config,
        db_path: Path,
        on_stored: Callable[[], None],
        stop: threading.Event,
        folder: str | None = None,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        self.cfg = cfg
        self.db_path = db_path
        self.on_stored = on_stored
        self.stop = stop
        self.folder = folder or cfg.imap.folder
        self.beat = beat  # a sign of life for the daemon's watchdog
        self.use_keyword = True
        self.tokens = imap_tokens(cfg)  # None: password login

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> IMAPClient:
        imap = self.cfg.imap
        client = open_client(imap)
        try:
            imap_login(client, imap, self.tokens)
        except BaseException:
            client.shutdown()
            raise
        return client

    def _wait(self, what: str, exc: Exception, failures: int) -> None:
        """After `failures` failures in a row: log, then wait before connecting again."""
        delay = reconnect_delay(failures)
        log.warning(what, extra={"error": repr(exc), "retry_in": round(delay, 1)})
        self.stop.wait(delay)

    def run(self) -> None:
        """Thread body: connect, drain, wait (IDLE or poll), reconnect after failures."""
        store = Store(self.db_path, migrate=False)
        attempt = 0
        try:
            while not self.stop.is_set():
                self.beat()
                try:
                    client = self.connect()
                except Exception as exc:
                    attempt += 1
                    self._wait("imap connect failed", exc, attempt)
                    continue
                attempt = 0
                log.info(
                    "imap connected",
                    extra={"host": self.cfg.imap.host, "folder": self.folder},
                )
                try:
                    self.session(client, store)
                except Exception as exc:
                    if self.stop.is_set():
                        break
                    attempt += 1
                    self._wait("imap connection lost", exc, attempt)
                finally:
                    _close(client)
        finally:
            store.close()

    def session(self, client: IMAPClient, store: Store) -> None:
        folder = self.folder
        info = client.select_folder(folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        flags = info.get(b"PERMANENTFLAGS", ())
        self.use_keyword = b"\\*" in flags or STORED in flags
        idle = self.cfg.imap.idle and client.has_capability("IDLE")
        while not self.stop.is_set():
            self.beat()
            # Mail arriving during a sync is announced in that sync's responses, not in the
            # next IDLE: look again until a pass finds nothing, then wait.
            while self.sync(client, store, folder, uidvalidity) and not self.stop.is_set():
                pass
            if idle:
                self.wait_idle(client)
            else:
                self.stop.wait(self.cfg.imap.poll_interval)
                client.noop()

    def wait_idle(self, client: IMAPClient) -> None:
        """IDLE until the server reports new mail, the poll interval passes, or we stop.

        Raises (the caller reconnects) when the connection turns out dead: IMAPClient's
        idle_check swallows the end of the stream, so a socket that was readable yet gave no
        response, or a server silent for `IDLE_QUIET`, is asked with a NOOP.
        """
        started = heard = time.monotonic()
        deadline = started + min(self.cfg.imap.poll_interval, IDLE_MAX)
        suspect = False
        client.idle()
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.beat()
                asked = time.monotonic()
                responses = client.idle_check(timeout=1)
                now = time.monotonic()
                if responses:
                    heard = now
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        return
                elif now - asked < 0.5 or now - heard > IDLE_QUIET:
                    suspect = True  # readable without a response (closed), or long silent
                    break
        finally:
            client.idle_done()  # on a dead connection this raises: no answer comes
        if suspect:
            client.noop()

    # -- draining --------------------------------------------------------------------------

    def _last_uid(self, store: Store, folder: str, uidvalidity: int) -> int:
        row = store.imap.get(folder)
        if row is None:
            return 0
        if row["uidvalidity"] != uidvalidity:
            log.warning(
                "UIDVALIDITY changed; rescanning folder (stored mail is recognised by content)",
                extra={"folder": folder, "old": row["uidvalidity"], "new": uidvalidity},
            )
            return 0
        return int(row["last_uid"])

    def sync(self, client: IMAPClient, store: Store, folder: str, uidvalidity: int) -> int:
        """Store every message not stored yet, then mark it on the server. Returns how many."""
        last_uid = self._last_uid(store, folder, uidvalidity)
        if self.use_keyword:
            candidates = client.search(["NOT", "KEYWORD", STORED.decode(), "NOT", "DELETED"])
        else:
            candidates = client.search(["UID", f"{last_uid + 1}:*", "NOT", "DELETED"])
        candidates = sorted(candidates)
        already = [uid for uid in candidates if uid <= last_uid]  # stored, mark lost in a crash
        if already:
            self.mark_stored(client, already)
        new = [uid for uid in candidates if uid > last_uid]
        if not new:
            return 0
        sizes = client.fetch(new, ["RFC822.SIZE"])
        stored = 0
        for batch in _batches(
            new, {uid: int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0)) for uid in new}
        ):
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
            now = datetime.now(UTC)
            with store.atomic():
                for uid in batch:
                    raw = fetched.get(uid, {}).get(b"BODY[]")
                    if raw is None:  # expunged meanwhile by someone else
                        continue
                    accept(
                        store,
                        bytes(raw),
                        source="imap",
                        now=now,
                        source_ref=f"{folder};{uidvalidity};{uid}",
                    )
                store.imap.set(folder, uidvalidity, max(batch))
            # Committed: only now may the server be told.
            self.mark_stored(client, batch)
            self.beat()
            stored += len(batch)
            log.info(
                "imap stored", extra={"folder": folder, "count": len(batch), "last_uid": max(batch)}
            )
            self.on_stored()
        return stored

    def mark_stored(self, client: IMAPClient, uids: list[int]) -> None:
        target = self.cfg.imap.processed_folder
        if target:
            if client.has_capability("MOVE"):
                client.move(uids, target)
            else:
                client.copy(uids, target)
                client.add_flags(uids, [b"\\Deleted"])
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(uids)
                else:
                    client.expunge()
            return
        client.add_flags(uids, [b"\\Seen", STORED] if self.use_keyword else [b"\\Seen"])


def open_client(imap: ImapInbound) -> IMAPClient:
    """A connection with TLS as configured, not logged in yet."""
    context = ssl.create_default_context(cafile=str(imap.cafile) if imap.cafile else None)
    client = IMAPClient(
        imap.host, port=imap.port, ssl=imap.tls == "ssl", ssl_context=context, timeout=30
    )
    try:
        if imap.tls == "starttls":
            client.starttls(context)
        keepalive(client.socket())
    except BaseException:
        client.shutdown()
        raise
    return client


def keepalive(sock: socket.socket) -> None:
    """TCP keepalive on `sock`: a peer that vanished without closing is noticed in ~90 s."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        option = getattr(socket, name, None)  # Linux names; other systems keep their defaults
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection may already be gone; closing is all that is left
        with contextlib.suppress(Exception):
            client.shutdown()


def _batches(uids: list[int], sizes: dict[int, int]) -> list[list[int]]:
    """UIDs grouped so each fetch holds about FETCH_BYTES (a large message travels alone)."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for uid in uids:
        if current and total + sizes.get(uid, 0) > FETCH_BYTES:
            batches.append(current)
            current, total = [], 0
        current.append(uid)
        total += sizes.get(uid, 0)
    if current:
        batches.append(current)
    return batches
