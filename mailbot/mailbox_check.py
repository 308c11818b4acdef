"""`mailbot check-mailbox`: sign in to IMAP and SMTP as configured, one line per step.

Each step prints `OK` or `FAILED` with the server's or provider's own words and, where the
cause is known, what to change. Steps after a failed one are not tried (they could only fail
too). The sign-in code is the daemon's own (mailbot.signin), so what works here works there.
"""

from __future__ import annotations

import contextlib
import imaplib
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from imapclient.exceptions import IMAPClientError

from mailbot.config import Config
from mailbot.oauth import OAuthError, TokenSource
from mailbot.signin import imap_login, imap_tokens, smtp_login, smtp_tokens

# What a refused login with a valid token usually means, per provider.
IMAP_REFUSED = {
    "microsoft": "the app has no IMAP.AccessAsApp permission (Entra ID > API permissions,"
    " with admin consent) or no access to this mailbox (Exchange Online PowerShell:"
    " New-ServicePrincipal, then Add-MailboxPermission -User <its object ID> -AccessRights"
    " FullAccess)",
    "google": "IMAP is off for this mailbox (Google Admin > Apps > Google Workspace > Gmail >"
    " End User Access) or username is not the mailbox the service account may act for",
    "generic": "the token is not valid for this mailbox at this server: check username and"
    " [oauth2] scopes",
    "password": "check username and the password in password_env/password_file",
}
SMTP_REFUSED = {
    "microsoft": "the app has no SMTP.SendAsApp permission (with admin consent), SMTP AUTH is"
    " off for the mailbox (Set-CASMailbox -SmtpClientAuthenticationDisabled $false), or the"
    " app has no Add-MailboxPermission for it",
    "google": "the service account may not send as this mailbox: check username and the"
    " domain-wide delegation scope https://mail.google.com/",
    "generic": "the token is not valid for sending as this user: check username and scopes",
    "password": "check username and the password in password_env/password_file",
}


class StepFailed(Exception):
    """A step failed; the text is what to print after FAILED."""


@dataclass
class Report:
    """The lines printed so far and whether any step failed."""

    write: Callable[[str], None] = print
    failed: bool = False
    lines: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        self.lines.append(text)
        self.write(text)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Run a step; append to the yielded list to add details after OK."""
        details: list[str] = []
        try:
            yield details
        except StepFailed as exc:
            self.failed = True
            self.line(f"{name}: FAILED {exc}")
            raise
        except OAuthError as exc:
            self.failed = True
            self.line(f"{name}: FAILED {exc}")
            raise StepFailed(str(exc)) from None
        except (OSError, imaplib.IMAP4.error, IMAPClientError, smtplib.SMTPException) as exc:
            self.failed = True
            self.line(f"{name}: FAILED {_describe(exc)}")
            raise StepFailed(_describe(exc)) from None
        self.line(f"{name}: OK" + (f" ({', '.join(details)})" if details else ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        return f"{exc.smtp_code} {' '.join(text.split())}"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message} (set cafile if it is a private CA)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (check host and port)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer (timed out; check host, port and firewall)"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _fix(text: str, fix: str) -> StepFailed:
    return StepFailed(f"{text} (fix: {fix})")


def check(cfg: Config, write: Callable[[str], None] = print) -> bool:
    """Try IMAP and SMTP as configured, printing one line per step; True when all went well."""
    report = Report(write)
    with contextlib.suppress(StepFailed):
        check_imap(cfg, report)
    with contextlib.suppress(StepFailed):
        check_smtp(cfg, report)
    return not report.failed


def _token_step(report: Report, label: str, tokens: TokenSource | None, provider: str) -> None:
    if tokens is None:
        return
    with report.step(f"{label} OAuth2 token ({provider})") as details:
        tokens.token()
        details.append("obtained")


def check_imap(cfg: Config, report: Report) -> None:
    imap = cfg.imap
    if not imap.enabled:
        report.line("IMAP: not checked ([inbound.imap] enabled = false)")
        return
    provider = cfg.oauth2.provider if imap.auth == "oauth2" and cfg.oauth2 else "password"
    tokens = imap_tokens(cfg)
    _token_step(report, "IMAP", tokens, provider)
    from mailbot.sources.imap import open_client

    with report.step(f"IMAP connect {imap.host}:{imap.port} ({imap.tls})"):
        client = open_client(imap)
    try:
        with report.step(f"IMAP login {imap.username} ({imap.auth})"):
            try:
                imap_login(client, imap, tokens)
            except IMAPClientError as exc:
                raise _fix(_describe(exc), IMAP_REFUSED[provider]) from None
        with report.step(f"IMAP select {imap.folder}") as details:
            info = client.select_folder(imap.folder, readonly=True)
            details.append(f"{int(info.get(b'EXISTS', 0))} messages")
        if imap.idle:
            with report.step("IMAP IDLE") as details:
                if not client.has_capability("IDLE"):
                    details.append(f"not offered: mailbot polls every {imap.poll_interval:g} s")
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def check_smtp(cfg: Config, report: Report) -> None:
    out = cfg.outbound
    if out.transport != "smtp":
        report.line(f'SMTP: not checked ([outbound] transport = "{out.transport}")')
        return
    provider = cfg.oauth2.provider if out.auth == "oauth2" and cfg.oauth2 else "password"
    tokens = smtp_tokens(cfg) if out.username else None
    _token_step(report, "SMTP", tokens, provider)
    context = ssl.create_default_context(cafile=str(out.cafile) if out.cafile else None)
    smtp: smtplib.SMTP
    with report.step(f"SMTP connect {out.host}:{out.port}" + (" (ssl)" if out.ssl else "")):
        if out.ssl:
            smtp = smtplib.SMTP_SSL(out.host, out.port, timeout=out.timeout, context=context)
        else:
            smtp = smtplib.SMTP(out.host, out.port, timeout=out.timeout)
    try:
        with report.step("SMTP EHLO") as details:
            code, _ = smtp.ehlo()
            if code != 250:
                raise StepFailed(f"{code} (the relay does not speak ESMTP)")
            if smtp.has_extn("auth"):
                details.append("AUTH " + smtp.esmtp_features["auth"].strip())
        if out.starttls and not out.ssl:
            with report.step("SMTP STARTTLS"):
                smtp.starttls(context=context)
                smtp.ehlo()
        if out.username:
            mechanism = "XOAUTH2" if tokens else "password"
            with report.step(f"SMTP AUTH {out.username} ({mechanism})"):
                try:
                    smtp_login(smtp, out.username, out.password.read, tokens)
                except smtplib.SMTPNotSupportedError as exc:
                    raise StepFailed(str(exc)) from None
                except smtplib.SMTPAuthenticationError as exc:
                    raise _fix(_describe(exc), SMTP_REFUSED[provider]) from None
        else:
            report.line("SMTP AUTH: not used ([outbound] username is empty)")
    finally:
        with contextlib.suppress(Exception):
            smtp.quit()
