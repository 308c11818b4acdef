"""Signing in to the IMAP server and the SMTP relay: password, or OAuth2 (SASL XOAUTH2).

With `auth = "oauth2"` the access token comes from a `mailbot.oauth.TokenSource`. A token the
server refuses (revoked, or expired earlier than announced) is dropped and the login tried once
more with a new one; a second refusal is final, so a misconfigured app does not hammer the
provider. Tokens never reach a log line or an error text.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailbot.config import Config, ImapInbound
from mailbot.oauth import TokenSource, server_error, token_source, xoauth2

log = logging.getLogger("mailbot.signin")


def imap_tokens(cfg: Config) -> TokenSource | None:
    """The access tokens IMAP signs in with, when `[inbound.imap] auth = "oauth2"`."""
    if cfg.imap.auth != "oauth2" or cfg.oauth2 is None:
        return None
    return token_source(cfg.oauth2, cfg.imap.username)


def smtp_tokens(cfg: Config) -> TokenSource | None:
    """The access tokens SMTP signs in with, when `[outbound] auth = "oauth2"`."""
    if cfg.outbound.auth != "oauth2" or cfg.oauth2 is None:
        return None
    return token_source(cfg.oauth2, cfg.outbound.username)


def imap_login(client: IMAPClient, imap: ImapInbound, tokens: TokenSource | None) -> None:
    """LOGIN with the password, or AUTHENTICATE XOAUTH2 with an access token."""
    if tokens is None:
        client.login(imap.username, imap.password.read() or "")
        return
    try:
        _imap_xoauth2(client, imap.username, tokens.token())
    except LoginError:
        log.info("imap refused the oauth2 token; signing in again with a new one")
        tokens.invalidate()
        _imap_xoauth2(client, imap.username, tokens.token())


class _XOAuth2:
    """SASL XOAUTH2 for IMAPClient.sasl_login: the token, then an empty reply to an error.

    A challenge after the token is the server's JSON error; RFC 7628 asks for an empty
    reply, after which the server ends the exchange with NO. (IMAPClient.oauth2_login
    would send the token a second time instead.)
    """

    def __init__(self, user: str, token: str) -> None:
        self.response: str | None = xoauth2(user, token)
        self.error = ""

    def __call__(self, challenge: bytes) -> bytes:
        if self.response is not None:
            response, self.response = self.response, None
            return response.encode()
        self.error = server_error(challenge)
        return b""


def _imap_xoauth2(client: IMAPClient, user: str, token: str) -> None:
    mechanism = _XOAuth2(user, token)
    try:
        client.sasl_login("XOAUTH2", mechanism)
    except LoginError as exc:
        if not mechanism.error:
            raise
        raise LoginError(f"{exc} ({mechanism.error})") from None


def smtp_login(
    smtp: smtplib.SMTP,
    username: str,
    password: Callable[[], str | None],
    tokens: TokenSource | None,
) -> None:
    """AUTH with the password (smtplib picks the mechanism), or AUTH XOAUTH2 with a token."""
    if tokens is None:
        smtp.login(username, password() or "")
        return
    smtp.ehlo_or_helo_if_needed()
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    if "XOAUTH2" not in offered:
        raise smtplib.SMTPNotSupportedError(
            "the relay does not offer AUTH XOAUTH2"
            + (f" (only {' '.join(offered)})" if offered else " (no AUTH here; STARTTLS first?)")
        )
    try:
        _auth_xoauth2(smtp, username, tokens.token())
    except smtplib.SMTPAuthenticationError:
        log.info("smtp refused the oauth2 token; signing in again with a new one")
        tokens.invalidate()
        _auth_xoauth2(smtp, username, tokens.token())


def _auth_xoauth2(smtp: smtplib.SMTP, username: str, token: str) -> None:
    detail: list[str] = []

    def response(challenge: bytes | None = None) -> str:
        if challenge is None:
            return xoauth2(username, token)
        # A challenge after the initial response is the server's JSON error: answer it
        # with an empty line (RFC 7628), and the server ends the exchange with 535.
        detail.append(server_error(challenge))
        return ""

    try:
        smtp.auth("XOAUTH2", response, initial_response_ok=True)
    except smtplib.SMTPAuthenticationError as exc:
        if not detail or not detail[0]:
            raise
        error = exc.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        raise smtplib.SMTPAuthenticationError(
            exc.smtp_code, f"{text} ({detail[0]})".encode()
        ) from None
