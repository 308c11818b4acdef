"""Signed Message-IDs: every mail we send carries a token bound to ticket, recipient and purpose.

A token is `mb.<ticket>.<purpose>.<nonce>.<mac>` used as the local part of the Message-ID. The MAC
is HMAC-SHA256 over ticket, purpose, recipient and nonce with the per-install secret, truncated to
128 bits. A reply's In-Reply-To/References carry the token back; `verify` tells whether the
replying address is the one we sent it to, which is how agents are authenticated.
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
    """Issues and checks Message-ID tokens with one secret and one domain."""

    def __init__(self, secret: bytes, domain: str) -> None:
        self._secret = secret
        self.domain = domain.lower()

    def _mac(self, ticket_id: int, purpose: str, recipient: str, nonce: str) -> str:
        message = f"{ticket_id}|{purpose}|{recipient.lower()}|{nonce}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()[:MAC_BYTES]
        return base64.b32encode(digest).decode().rstrip("=").lower()

    def message_id(self, ticket_id: int, purpose: str, recipient: str) -> str:
        nonce = secrets.token_hex(4)
        mac = self._mac(ticket_id, purpose, recipient, nonce)
        return f"<mb.{ticket_id}.{purpose}.{nonce}.{mac}@{self.domain}>"

    def parse(self, message_id: str) -> Token | None:
        """The token in one of our Message-IDs (unverified), or None."""
        match = TOKEN_RE.match(message_id.strip().lower())
        if not match or match.group(5) != self.domain:
            return None
        return Token(int(match.group(1)), match.group(2), match.group(3), match.group(4))

    def verify(self, token: Token, recipient: str) -> bool:
        """True when the token was issued by us to exactly this recipient."""
        expected = self._mac(token.ticket_id, token.purpose, recipient, token.nonce)
        return hmac.compare_digest(expected, token.mac)
