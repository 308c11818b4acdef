"""Embedded SMTP/LMTP listener: accepts mail for the support addresses, 250 only after commit.

The listener takes no ticket decisions. RCPT is accepted only for the support addresses
(`[mailbot] address` and `[[mailboxes]]`) and their `+tag` variants (550 otherwise: never a
relay); SIZE is announced and enforced (552); DATA is answered 250 once the raw bytes are
committed in the inbound table, 451 if anything failed. The recipients are kept with the
message: they tell which mailbox it came in through.

At most `max_sessions` connections are served at once; one more is answered `421` and closed,
and a client silent for `idle_timeout` is disconnected: a flood of idle connections cannot use
up the file handles that real deliveries and the database need.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbot.config import Config
from mailbot.intake import accept
from mailbot.store import Store

log = logging.getLogger("mailbot.smtp")


def accepts_recipient(address: str, support: str) -> bool:
    """The support address itself or a +tag variant of it, compared case-insensitively."""
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    support_local, _, support_domain = support.lower().rpartition("@")
    return domain == support_domain and local.split("+", 1)[0] == support_local


class IntakeHandler:
    """aiosmtpd handler: RCPT policy and durable storage of DATA."""

    def __init__(self, cfg: Config, db_path: Path, on_stored: Callable[[], None]) -> None:
        self.cfg = cfg
        self.db_path = db_path
        self.on_stored = on_stored
        # SQLite commits (fsync) must not stall the event loop: one writer thread does them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smtp-intake")
        self._local = threading.local()

    def _store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self.db_path, migrate=False)
        return store

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list
    ) -> str:
        if not any(accepts_recipient(address, box.address) for box in self.cfg.mailboxes):
            log.info("recipient refused", extra={"rcpt": address, "peer": session.peer})
            return "550 5.1.1 No such mailbox here; this server relays nothing"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def _commit(self, raw: bytes, mail_from: str, rcpts: list[str], source: str) -> int:
        inbound_id, _ = accept(
            self._store(),
            raw,
            source=source,
            now=datetime.now(UTC),
            envelope_from=mail_from,
            envelope_to=rcpts,
        )
        return inbound_id

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        source = "lmtp" if isinstance(server, LMTP) else "smtp"
        try:
            inbound_id = await asyncio.get_running_loop().run_in_executor(
                self._executor,
                self._commit,
                raw,
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                source,
            )
        except Exception:
            log.exception("could not store message", extra={"peer": session.peer})
            status = "451 4.3.0 Temporary failure storing the message; try again later"
        else:
            log.info("stored", extra={"inbound": inbound_id, "size": len(raw), "source": source})
            self.on_stored()
            status = f"250 2.0.0 Stored as {inbound_id}"
        if source == "lmtp":
            # LMTP answers DATA once per accepted recipient; all share the one stored copy.
            return "\r\n".join([status] * len(envelope.rcpt_tos))
        return status

    async def responds(self) -> None:
        """Returns once the storing thread has run a no-op: the daemon's watchdog probe."""
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


TOO_MANY = b"421 4.7.0 too many connections, try again later\r\n"


class Sessions:
    """How many connections are being served; touched only on the listener's event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refusing = False  # logged once until a connection is served again


class CappedSMTP(SMTP):
    """aiosmtpd's SMTP, serving a connection only while fewer than `Sessions.limit` are open."""

    def __init__(self, handler: IntakeHandler, sessions: Sessions, **kwargs: object) -> None:
        super().__init__(handler, **kwargs)  # type: ignore[arg-type]
        self._sessions = sessions
        self._counted = False
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._counted:  # not the second call after STARTTLS
            if self._sessions.open >= self._sessions.limit:
                self._refused = True
                if not self._sessions.refusing:
                    self._sessions.refusing = True
                    log.warning(
                        "too many connections: refusing more with 421",
                        extra={
                            "peer": transport.get_extra_info("peername"),
                            "sessions": self._sessions.open,
                        },
                    )
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(TOO_MANY)
                transport.close()
                return
            self._sessions.open += 1
            self._sessions.refusing = False
            self._counted = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        # aiosmtpd restarts its timer per command only: a large message arriving slowly
        # would be cut off after `timeout` seconds. Any bytes show the client is not idle.
        if self._timeout_handle is not None:
            self._reset_timeout()
        super().data_received(data)

    def eof_received(self) -> bool | None:
        return False if self._refused else super().eof_received()

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._counted:
            self._counted = False
            self._sessions.open -= 1
        super().connection_lost(error)


class CappedLMTP(LMTP, CappedSMTP):
    """The same for LMTP."""


class Listener(Controller):
    """The SMTP or LMTP server on the configured address, running in its own thread."""

    def __init__(self, cfg: Config, db_path: Path, on_stored: Callable[[], None]) -> None:
        self.intake = IntakeHandler(cfg, db_path, on_stored)
        self.protocol = cfg.smtp.protocol
        super().__init__(
            self.intake,
            hostname=cfg.smtp.host,
            port=cfg.smtp.port,
            data_size_limit=cfg.smtp.max_message_size,
            ident="mailbot",
            server_hostname=cfg.mailbot.domain,
            timeout=cfg.smtp.idle_timeout,
        )
        self.sessions = Sessions(cfg.smtp.max_sessions)

    def factory(self) -> SMTP:
        server_class = CappedLMTP if self.protocol == "lmtp" else CappedSMTP
        return server_class(self.handler, self.sessions, **self.SMTP_kwargs)

    def abandon(self) -> None:
        """Clean up after start() failed (nothing is listening): no thread or loop left behind."""
        self.intake.close()
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert=no_assert)
        self.intake.close()
