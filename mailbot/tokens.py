"""Signed Message-IDs: every mail we send carries a token bound to ticket, recipient and purpose.

A token is `mb.<ticket>.<purpose>.<nonce>.<mac>` used as the local part of the Message-ID. The MAC
is HMAC-SHA256 over ticket, purpose, recipient and nonce, and the database's install id and the
ticket's random key (both kept in the database, not in the token), with the per-install secret,
truncated to 128 bits. So a token outlives neither its database (a new one has another install
id) nor its ticket (a ticket that gets the same number again, after an older backup was
restored, has another key), and the Message-ID stays as short as before. A reply's
In-Reply-To/References carry the token back; `verify` tells whether the replying address is the
one we sent it to, for the ticket of that number in this database, which is how agents are
authenticated.

Tokens issued before tokens were bound (MAC over ticket, purpose, recipient and nonce only) are
accepted for tickets without a key only: the tickets that existed before that change.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from mailbot.files import private_dir

TOKEN_RE = re.compile(
    r"^<?mb\.(\d{1,12})\.([a-z]{1,16})\.([a-z0-9]{8,32})\.([a-z2-7]{26})@([^>]+)>?$"
)
MAC_BYTES = 16  # 128 bits: unguessable, and keeps the Message-ID on one header line


def new_ticket_key() -> str:
    """A new ticket's random key (64 bits): the MACs of its tokens cover it."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Token:
    ticket_id: int
    purpose: str
    nonce: str
    mac: str


def load_secret(data_dir: Path) -> bytes:
    """The per-install secret, generated on first start and kept (mode 0600) in the data dir."""
    path = data_dir / "secret.key"
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        private_dir(data_dir)
        secret = secrets.token_bytes(32)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # never overwrite a secret another process created meanwhile
        tmp.unlink()
        secret = path.read_bytes()
    if len(secret) < 16:
        raise ValueError(f"{path} is too short to be a secret")
    return secret


class Signer:
    """Issues and checks Message-ID tokens with one secret and one database, for our domain
    (and those of the other support addresses, `more_domains`: mail from a mailbox carries its
    domain)."""

    def __init__(
        self, secret: bytes, domain: str, more_domains: tuple[str, ...] = (), install_id: str = ""
    ) -> None:
        self._secret = secret
        self.domain = domain.lower()
        self.domains = frozenset({self.domain, *(d.lower() for d in more_domains)})
        self.install_id = install_id

    def _mac(
        self, ticket_id: int, purpose: str, recipient: str, nonce: str, ticket_key: str | None
    ) -> str:
        message = f"{ticket_id}|{purpose}|{recipient.lower()}|{nonce}"
        if ticket_key is not None:  # None: the form from before tokens were bound
            message += f"|{self.install_id}|{ticket_key}"
        digest = hmac.new(self._secret, message.encode(), hashlib.sha256).digest()[:MAC_BYTES]
        return base64.b32encode(digest).decode().rstrip("=").lower()

    def message_id(
        self,
        ticket_id: int,
        purpose: str,
        recipient: str,
        domain: str | None = None,
        ticket_key: str | None = None,
    ) -> str:
        """A signed Message-ID for mail about `ticket_id` (0: none), whose key is given."""
        nonce = secrets.token_hex(4)
        mac = self._mac(ticket_id, purpose, recipient, nonce, ticket_key or "")
        return f"<mb.{ticket_id}.{purpose}.{nonce}.{mac}@{domain or self.domain}>"

    def parse(self, message_id: str) -> Token | None:
        """The token in one of our Message-IDs (unverified), or None."""
        match = TOKEN_RE.match(message_id.strip().lower())
        if not match or match.group(5) not in self.domains:
            return None
        return Token(int(match.group(1)), match.group(2), match.group(3), match.group(4))

    def verify(self, token: Token, recipient: str, ticket_key: str | None) -> bool:
        """True when we issued the token to exactly this recipient, for the ticket of its
        number in this database, whose key (None: a ticket from before keys) is given."""
        expected = self._mac(
            token.ticket_id, token.purpose, recipient, token.nonce, ticket_key or ""
        )
        if hmac.compare_digest(expected, token.mac):
            return True
        if ticket_key is None:  # a ticket from before tokens were bound: its old tokens too
            legacy = self._mac(token.ticket_id, token.purpose, recipient, token.nonce, None)
            return hmac.compare_digest(legacy, token.mac)
        return False
