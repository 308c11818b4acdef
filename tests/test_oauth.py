"""OAuth2 sign-in (XOAUTH2) to a real Dovecot and a real aiosmtpd, tokens from a local provider.

Dovecot checks every XOAUTH2 login with its oauth2 passdb against the introspection endpoint of
`tests.oauth_endpoint.TokenEndpoint`, which also issues the tokens; the SMTP sink asks the same
endpoint. MSAL, google-auth and Authlib run unmodified against it, so the whole flow (obtain →
login → expiry → refresh → login again) runs here without the internet.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot import config as config_module
from mailbot.cli import main
from mailbot.logs import StructuredFormatter
from mailbot.oauth import Token, TokenSource
from mailbot.outbox import DeliveryError, SmtpTransport
from mailbot.sources.imap import ImapSource
from tests.daemon_helpers import InProcessDaemon, daemon_settings, wait_until
from tests.helpers import make_mail, write_config
from tests.oauth_endpoint import CLIENT_ID, TENANT, TokenEndpoint
from tests.servers import DEFAULT_USER, Dovecot, SmtpDelivery, SmtpSink, running_dovecot

SECRET_ENV = "MAILBOT_TEST_OAUTH_SECRET"
REFRESH_ENV = "MAILBOT_TEST_OAUTH_REFRESH"


@pytest.fixture
def token_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenEndpoint]:
    """The local provider; its client secret and refresh token are in the environment."""
    endpoint = TokenEndpoint(tmp_path / "oauth")
    monkeypatch.setenv(SECRET_ENV, endpoint.client_secret)
    monkeypatch.setenv(REFRESH_ENV, endpoint.refresh_token)
    try:
        yield endpoint
    finally:
        endpoint.close()


@pytest.fixture
def oauth_dovecot(token_endpoint: TokenEndpoint) -> Iterator[Dovecot]:
    """Dovecot whose XOAUTH2 logins are checked against the token endpoint."""
    with running_dovecot(oauth2_introspection_url=token_endpoint.introspection_url) as server:
        yield server


@pytest.fixture
def xoauth2_sink(token_endpoint: TokenEndpoint) -> Iterator[SmtpSink]:
    """An SMTP relay that takes AUTH XOAUTH2 with the endpoint's tokens (and nothing else)."""
    with SmtpSink(xoauth2=token_endpoint.active, tls=False) as sink:
        yield sink


def microsoft(endpoint: TokenEndpoint, **more: str) -> dict[str, str]:
    """[oauth2] for the app registration that the endpoint plays Entra ID for."""
    return {
        "oauth2.provider": '"microsoft"',
        "oauth2.tenant": f'"{TENANT}"',
        "oauth2.client_id": f'"{CLIENT_ID}"',
        "oauth2.client_secret_env": f'"{SECRET_ENV}"',
        "oauth2.authority": f'"{endpoint.base_url}"',
        "oauth2.cafile": f'"{endpoint.cafile}"',
        **more,
    }


def smtp_oauth2(relay) -> dict[str, str]:
    """[outbound] to a loopback relay without TLS, signing in as the mailbox with OAuth2."""
    return {
        "outbound.transport": '"smtp"',
        "outbound.host": '"127.0.0.1"',
        "outbound.port": str(relay.port),
        "outbound.starttls": "false",
        "outbound.username": f'"{DEFAULT_USER}"',
        "outbound.auth": '"oauth2"',
    }


def oauth_everywhere(sink: SmtpSink, dovecot: Dovecot, oauth2: dict[str, str]) -> dict[str, str]:
    return daemon_settings(
        sink,
        dovecot,
        **{
            "inbound.imap.auth": '"oauth2"',
            "inbound.imap.password_env": '""',
            "outbound.username": f'"{DEFAULT_USER}"',
            "outbound.auth": '"oauth2"',
        },
        **oauth2,
    )


def outlook_mail(sender: str = "Ewa Nowak <ewa.nowak@firma.pl>") -> bytes:
    """A new request as Outlook 365 sends it (its Message-ID and thread headers)."""
    return make_mail(
        sender=sender,
        subject="Brak potwierdzenia dostawy",
        body="Dzień dobry,\r\nnie dostaliśmy potwierdzenia dostawy zamówienia 4471.\r\n",
        message_id="<AM9PR02MB7345E1D2C0B1A2F3C4D5E6F7A8B9@AM9PR02MB7345.eurprd02.prod.outlook.com>",
        headers={
            "Thread-Topic": "Brak potwierdzenia dostawy",
            "Thread-Index": "AQHbRkq3fQ2c9mJ0tUaZ1x0bY7e3Zg==",
            "X-MS-Has-Attach": "",
            "Content-Language": "pl-PL",
        },
    )


def leaks(text: str | bytes, endpoint: TokenEndpoint) -> list[str]:
    """The secrets and tokens of `endpoint` found in `text` (shown by their first characters)."""
    data = text if isinstance(text, bytes) else text.encode()
    return [secret[:8] + "…" for secret in endpoint.leak_strings() if secret.encode() in data]


def formatted_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as the daemon would print it, except the test relay's own."""
    formatter = StructuredFormatter()  # full addresses: a leak must not hide behind redaction
    return "\n".join(
        formatter.format(r) for r in caplog.records if not r.name.startswith("mail.log")
    )


# -- the whole flow ------------------------------------------------------------------------


@pytest.mark.slow
def test_daemon_reads_and_sends_with_microsoft_tokens_and_renews_them_when_they_expire(
    tmp_path: Path, token_endpoint, oauth_dovecot, xoauth2_sink, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    token_endpoint.lifetime = 3.0

    def sent_to(address: str) -> list[SmtpDelivery]:
        return [m for m in xoauth2_sink.messages if m.rcpt_tos == (address,)]

    running = InProcessDaemon(
        tmp_path, oauth_everywhere(xoauth2_sink, oauth_dovecot, microsoft(token_endpoint))
    ).start()
    try:
        oauth_dovecot.append(outlook_mail())
        [ack] = wait_until(lambda: sent_to("ewa.nowak@firma.pl"), 15, "the first ack")
        assert ack.auth_user == DEFAULT_USER
        assert len(token_endpoint.issued) == 2  # one for IMAP, one for SMTP
        # Both tokens expire; the server ends the sessions and the relay restarts.
        time.sleep(token_endpoint.lifetime + 0.5)
        oauth_dovecot.drop_connections()
        xoauth2_sink.restart()
        oauth_dovecot.append(outlook_mail("Adam Wiśniewski <adam@hurtownia.pl>"))
        [ack] = wait_until(lambda: sent_to("adam@hurtownia.pl"), 20, "the second ack")
        assert ack.auth_user == DEFAULT_USER
        running.wait_idle()
        assert running.count("tickets") == 2
    finally:
        running.stop()
    # New tokens were fetched for the new sessions: none was used after it expired.
    assert len(token_endpoint.issued) == 4
    assert {i.grant for i in token_endpoint.issued} == {"microsoft"}
    logins = oauth_dovecot.log().count("method=XOAUTH2")
    assert logins >= 2
    assert len(token_endpoint.leak_strings()) == 4 + 4  # two secrets, two keys, four tokens
    assert leaks(formatted_logs(caplog), token_endpoint) == []
    database = running.cfg.mailbot.data_dir / "mailbot.sqlite3"
    stored = b"".join(p.read_bytes() for p in database.parent.glob("mailbot.sqlite3*"))
    assert leaks(stored, token_endpoint) == []


# -- a refused token is retried exactly once -------------------------------------------------


def load(tmp_path: Path, settings: dict[str, str]) -> config_module.Config:
    return config_module.load(write_config(tmp_path, settings=settings))


def test_imap_login_refused_with_a_revoked_token_is_retried_once_with_a_new_token(
    tmp_path: Path, token_endpoint, oauth_dovecot
) -> None:
    cfg = load(tmp_path, oauth_everywhere(SmtpSink(), oauth_dovecot, microsoft(token_endpoint)))
    source = ImapSource(cfg, tmp_path / "unused.sqlite3", lambda: None, threading.Event())
    source.connect().logout()
    token_endpoint.revoke()  # as an admin revoking the app's sessions would
    before = len(token_endpoint.introspected)
    client = source.connect()
    try:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    finally:
        client.logout()
    assert len(token_endpoint.issued) == 2
    # The cached token was refused, the new one accepted: two logins, no more.
    assert len(token_endpoint.introspected) - before == 2
    assert token_endpoint.introspected[-2:] == token_endpoint.tokens()


def test_imap_login_refused_with_fresh_tokens_too_gives_up_after_one_retry(
    tmp_path: Path, token_endpoint, oauth_dovecot
) -> None:
    # The app may sign in, but was not given this mailbox (no Add-MailboxPermission).
    token_endpoint.mailbox = "inna-skrzynka@4dustry.com"
    cfg = load(tmp_path, oauth_everywhere(SmtpSink(), oauth_dovecot, microsoft(token_endpoint)))
    source = ImapSource(cfg, tmp_path / "unused.sqlite3", lambda: None, threading.Event())
    with pytest.raises(Exception, match="AUTHENTICATIONFAILED"):
        source.connect()
    assert len(token_endpoint.issued) == 2
    assert len(token_endpoint.introspected) == 2


def test_smtp_auth_refused_with_a_revoked_token_is_retried_once_and_the_mail_goes_out(
    tmp_path: Path, token_endpoint, xoauth2_sink
) -> None:
    settings = {
        **smtp_oauth2(xoauth2_sink),
        **microsoft(token_endpoint),
    }
    transport = SmtpTransport(load(tmp_path, settings))
    raw = outlook_mail()
    try:
        transport.send("1", DEFAULT_USER, ["ewa.nowak@firma.pl"], raw)
        transport.close()  # the next message needs a new connection, so a new AUTH
        token_endpoint.revoke()
        transport.send("2", DEFAULT_USER, ["ewa.nowak@firma.pl"], raw)
    finally:
        transport.close()
    assert [m.auth_user for m in xoauth2_sink.wait_for(2)] == [DEFAULT_USER, DEFAULT_USER]
    assert len(token_endpoint.issued) == 2
    assert len(token_endpoint.introspected) == 3  # first AUTH, refused one, its retry

    token_endpoint.mailbox = "inna-skrzynka@4dustry.com"  # every token refused from now on
    token_endpoint.revoke()
    with pytest.raises(DeliveryError) as failed:
        transport.send("3", DEFAULT_USER, ["ewa.nowak@firma.pl"], raw)
    transport.close()
    assert not failed.value.permanent  # the mail waits for the admin to fix it
    assert "535" in str(failed.value)
    assert len(token_endpoint.introspected) == 5  # refused, retried once, given up


# -- the other providers ---------------------------------------------------------------------


def test_google_service_account_signs_in_as_the_mailbox_it_impersonates(
    tmp_path: Path, token_endpoint, oauth_dovecot
) -> None:
    google = {
        "oauth2.provider": '"google"',
        "oauth2.service_account_file": f'"{token_endpoint.service_account_file}"',
        "oauth2.cafile": f'"{token_endpoint.cafile}"',
    }
    cfg = load(tmp_path, oauth_everywhere(SmtpSink(), oauth_dovecot, google))
    source = ImapSource(cfg, tmp_path / "unused.sqlite3", lambda: None, threading.Event())
    oauth_dovecot.append(outlook_mail())
    client = source.connect()
    try:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 1
    finally:
        client.logout()
    [issued] = token_endpoint.issued
    # The JWT google-auth signed named the mailbox as its subject (domain-wide delegation).
    assert (issued.grant, issued.mailbox) == ("google", DEFAULT_USER)


def test_generic_provider_turns_the_refresh_token_into_access_tokens_for_smtp(
    tmp_path: Path, token_endpoint, xoauth2_sink
) -> None:
    settings = {
        **smtp_oauth2(xoauth2_sink),
        "oauth2.provider": '"generic"',
        "oauth2.token_url": f'"{token_endpoint.base_url}/generic/token"',
        "oauth2.client_id": f'"{CLIENT_ID}"',
        "oauth2.client_secret_env": f'"{SECRET_ENV}"',
        "oauth2.refresh_token_env": f'"{REFRESH_ENV}"',
        "oauth2.cafile": f'"{token_endpoint.cafile}"',
    }
    transport = SmtpTransport(load(tmp_path, settings))
    try:
        transport.send("1", DEFAULT_USER, ["ewa.nowak@firma.pl"], outlook_mail())
    finally:
        transport.close()
    [delivery] = xoauth2_sink.wait_for(1)
    assert delivery.auth_user == DEFAULT_USER
    assert [i.grant for i in token_endpoint.issued] == ["generic"]


def test_microsoft_app_with_a_certificate_instead_of_a_secret(
    tmp_path: Path, token_endpoint, oauth_dovecot, monkeypatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    oauth2 = microsoft(
        token_endpoint,
        **{
            "oauth2.client_secret_env": '""',
            "oauth2.certificate_file": f'"{token_endpoint.app_certificate_file}"',
        },
    )
    cfg = load(tmp_path, oauth_everywhere(SmtpSink(), oauth_dovecot, oauth2))
    source = ImapSource(cfg, tmp_path / "unused.sqlite3", lambda: None, threading.Event())
    source.connect().logout()
    assert [i.grant for i in token_endpoint.issued] == ["microsoft"]


def test_a_token_is_reused_until_shortly_before_it_expires() -> None:
    now = [0.0]
    lifetimes = iter([3600.0, 3600.0, 20.0])

    class Provider:
        def fetch(self) -> Token:
            return Token(f"token-{now[0]:g}", next(lifetimes))

    tokens = TokenSource(Provider(), clock=lambda: now[0])
    assert tokens.token() == "token-0"
    now[0] = 3299.0  # more than five minutes left: kept
    assert tokens.token() == "token-0"
    now[0] = 3300.0  # five minutes left: renewed before the server could refuse it
    assert tokens.token() == "token-3300"
    tokens.invalidate()
    now[0] = 3301.0
    assert tokens.token() == "token-3301"  # a short-lived token: renewed in its last tenth
    now[0] = 3318.0
    assert tokens.token() == "token-3301"
    assert tokens.fetched == 3


# -- check-mailbox ---------------------------------------------------------------------------


def check_mailbox(config_path: Path, capsys) -> tuple[int, list[str]]:
    code = main(["--config", str(config_path), "check-mailbox"])
    return code, capsys.readouterr().out.splitlines()


def test_check_mailbox_signs_in_to_imap_and_smtp_with_oauth2_one_line_per_step(
    tmp_path: Path, token_endpoint, oauth_dovecot, xoauth2_sink, capsys
) -> None:
    path = write_config(
        tmp_path,
        settings=oauth_everywhere(xoauth2_sink, oauth_dovecot, microsoft(token_endpoint)),
    )
    code, lines = check_mailbox(path, capsys)
    assert code == 0
    assert [line.partition(": ")[0] for line in lines] == [
        "IMAP OAuth2 token (microsoft)",
        f"IMAP connect 127.0.0.1:{oauth_dovecot.port} (none)",
        f"IMAP login {DEFAULT_USER} (oauth2)",
        "IMAP select INBOX",
        "IMAP IDLE",
        "SMTP OAuth2 token (microsoft)",
        f"SMTP connect 127.0.0.1:{xoauth2_sink.port}",
        "SMTP EHLO",
        f"SMTP AUTH {DEFAULT_USER} (XOAUTH2)",
    ]
    assert all(": OK" in line for line in lines), lines
    assert "XOAUTH2" in lines[7]  # the relay's AUTH mechanisms, as it announced them


def test_check_mailbox_names_a_wrong_client_secret_and_what_to_do(
    tmp_path: Path, token_endpoint, oauth_dovecot, xoauth2_sink, capsys, monkeypatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "2b4c6d8e-the-secret-id-not-its-value")
    path = write_config(
        tmp_path,
        settings=oauth_everywhere(xoauth2_sink, oauth_dovecot, microsoft(token_endpoint)),
    )
    code, lines = check_mailbox(path, capsys)
    assert code == 1
    assert lines[0].startswith(
        "IMAP OAuth2 token (microsoft): FAILED invalid_client: AADSTS7000215"
    )
    assert "Certificates & secrets" in lines[0]
    assert lines[1].startswith("SMTP OAuth2 token (microsoft): FAILED")
    assert len(lines) == 2  # nothing tried with a token that does not exist
    assert oauth_dovecot.log().count("method=XOAUTH2") == 0


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("oauth2.tenant", '"4dustry.onmicrosoft.com"', "(fix: no such tenant: check [oauth2]"),
        ("oauth2.cafile", '""', "its certificate is not trusted (for a private CA set [oauth2]"),
    ],
    ids=["unknown tenant", "untrusted sign-in service"],
)
def test_check_mailbox_says_what_keeps_the_token_from_coming(
    tmp_path: Path, token_endpoint, capsys, setting: str, value: str, expected: str
) -> None:
    settings = {
        "inbound.imap.enabled": "true",
        "inbound.imap.auth": '"oauth2"',
        **microsoft(token_endpoint, **{setting: value}),
    }
    code, lines = check_mailbox(write_config(tmp_path, settings=settings), capsys)
    assert code == 1
    assert lines[0].startswith("IMAP OAuth2 token (microsoft): FAILED ")
    assert expected in lines[0]
    assert token_endpoint.issued == []


def test_check_mailbox_names_a_relay_without_xoauth2(
    tmp_path: Path, token_endpoint, capsys
) -> None:
    with SmtpSink(tls=False) as password_only:
        settings = {
            **smtp_oauth2(password_only),
            **microsoft(token_endpoint),
        }
        code, lines = check_mailbox(write_config(tmp_path, settings=settings), capsys)
    assert code == 1
    assert lines[-1] == (
        f"SMTP AUTH {DEFAULT_USER} (XOAUTH2): FAILED the relay does not offer AUTH XOAUTH2"
        " (only LOGIN PLAIN)"
    )


def test_check_mailbox_explains_a_mailbox_the_app_was_not_given(
    tmp_path: Path, token_endpoint, oauth_dovecot, capsys
) -> None:
    token_endpoint.mailbox = "inna-skrzynka@4dustry.com"
    settings = oauth_everywhere(SmtpSink(), oauth_dovecot, microsoft(token_endpoint))
    settings["outbound.transport"] = '"maildir"'
    code, lines = check_mailbox(write_config(tmp_path, settings=settings), capsys)
    assert code == 1
    assert lines[2].startswith(f"IMAP login {DEFAULT_USER} (oauth2): FAILED")
    assert "IMAP.AccessAsApp" in lines[2] and "Add-MailboxPermission" in lines[2]
    assert "(status=401 " in lines[2]  # Dovecot's own XOAUTH2 error, after the empty reply
    assert lines[3] == 'SMTP: not checked ([outbound] transport = "maildir")'


def test_check_mailbox_with_passwords_against_dovecot_and_aiosmtpd(
    tmp_path: Path, dovecot, capsys, monkeypatch
) -> None:
    with SmtpSink(tls=True) as sink:
        assert sink.cafile is not None
        settings = daemon_settings(
            sink,
            dovecot,
            **{
                "outbound.username": f'"{sink.username}"',
                "outbound.password_env": '"MAILBOT_TEST_SMTP_PASSWORD"',
                "outbound.starttls": "true",
                "outbound.cafile": f'"{sink.cafile}"',
            },
        )
        path = write_config(tmp_path, settings=settings)
        monkeypatch.setenv("MAILBOT_TEST_SMTP_PASSWORD", sink.password)
        code, lines = check_mailbox(path, capsys)
        assert code == 0, lines
        assert [line.partition(": ")[0] for line in lines] == [
            f"IMAP connect 127.0.0.1:{dovecot.port} (none)",
            f"IMAP login {DEFAULT_USER} (password)",
            "IMAP select INBOX",
            "IMAP IDLE",
            f"SMTP connect 127.0.0.1:{sink.port}",
            "SMTP EHLO",
            "SMTP STARTTLS",
            f"SMTP AUTH {sink.username} (password)",
        ]
        monkeypatch.setenv("MAILBOT_TEST_IMAP_PASSWORD", "stare-haslo")
        monkeypatch.setenv("MAILBOT_TEST_SMTP_PASSWORD", "stare-haslo")
        code, lines = check_mailbox(path, capsys)
    assert code == 1
    assert lines[1].startswith(f"IMAP login {DEFAULT_USER} (password): FAILED")
    assert "password_env" in lines[1]
    assert lines[-1].startswith(f"SMTP AUTH {sink.username} (password): FAILED 535")


# -- check-config ----------------------------------------------------------------------------


def test_check_config_reports_what_oauth2_still_lacks(tmp_path: Path, capsys) -> None:
    not_google = tmp_path / "key.json"
    not_google.write_text(json.dumps({"type": "authorized_user", "client_id": "x"}))
    settings = {
        "inbound.imap.enabled": "true",
        "inbound.imap.auth": '"oauth2"',
        "inbound.imap.username": '""',
        "inbound.imap.password_env": '""',
        "outbound.transport": '"smtp"',
        "outbound.username": f'"{DEFAULT_USER}"',
        "outbound.auth": '"oauth2"',
    }
    path = write_config(tmp_path, settings={**settings, "oauth2.provider": '"microsoft"'})
    assert main(["--config", str(path), "check-config"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        "config.toml: [inbound.imap] username: the mailbox to sign in as is needed for"
        " oauth2" in out
    )
    assert "config.toml: [oauth2] tenant: required for provider = 'microsoft'" in out
    assert "config.toml: [oauth2] client_id: required for provider = 'microsoft'" in out
    assert any(
        line.startswith("config.toml: [oauth2] client_secret_env: a client secret") for line in out
    )
    # No password is asked for where OAuth2 signs in.
    assert not any("password" in line for line in out)

    path = write_config(
        tmp_path,
        settings={
            **settings,
            "oauth2.provider": '"google"',
            "oauth2.service_account_file": f'"{not_google}"',
        },
    )
    assert main(["--config", str(path), "check-config"]) == 1
    out = capsys.readouterr().out
    assert "[oauth2] service_account_file: key.json is not a service account key" in out

    path = write_config(
        tmp_path,
        settings={
            **settings,
            "oauth2.provider": '"generic"',
            "oauth2.token_url": '"http://login.example.com/token"',
        },
    )
    assert main(["--config", str(path), "check-config"]) == 1
    out = capsys.readouterr().out
    assert "[oauth2] token_url: must be an https:// address" in out
    assert "[oauth2] refresh_token_env: a refresh_token_env or refresh_token_file is needed" in out

    path = write_config(tmp_path, settings={**settings, "oauth2.provider": '""'})
    assert main(["--config", str(path), "check-config"]) == 1
    out = capsys.readouterr().out
    assert "[outbound] auth: oauth2 needs an [oauth2] section with a provider" in out


def test_check_config_checks_oauth2_set_up_before_it_is_switched_on(
    tmp_path: Path, token_endpoint, capsys, monkeypatch
) -> None:
    # Only the certificate, as exported from the portal: the private key is missing.
    pem = token_endpoint.app_certificate_file.read_text()
    certificate_only = tmp_path / "mailbot-app.cer.pem"
    certificate_only.write_text(pem[pem.index("-----BEGIN CERTIFICATE-----") :])
    monkeypatch.delenv(SECRET_ENV)  # not needed yet: nothing signs in with it
    oauth2 = microsoft(token_endpoint, **{"oauth2.certificate_file": f'"{certificate_only}"'})
    path = write_config(tmp_path, settings=oauth2)
    assert main(["--config", str(path), "check-config"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "config.toml: [oauth2] certificate_file: give a client secret or a certificate, not both"
    ]
    oauth2["oauth2.client_secret_env"] = '""'
    path = write_config(tmp_path, settings=oauth2)
    assert main(["--config", str(path), "check-config"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "config.toml: [oauth2] certificate_file: mailbot-app.cer.pem holds no private key"
        " (PEM with both is needed)"
    ]
    path = write_config(
        tmp_path,
        settings={
            **oauth2,
            "oauth2.certificate_file": f'"{token_endpoint.app_certificate_file}"',
        },
    )
    assert main(["--config", str(path), "check-config"]) == 0


def test_smtp_xoauth2_error_challenge_is_answered_and_reported(
    token_endpoint, xoauth2_sink
) -> None:
    from mailbot.signin import smtp_login

    class Refused:
        def fetch(self) -> Token:
            return Token("at.never-issued", 3600.0)

    smtp = smtplib.SMTP(xoauth2_sink.host, xoauth2_sink.port, timeout=10)
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp_login(smtp, DEFAULT_USER, lambda: None, TokenSource(Refused()))
        # The session is still usable: the JSON challenge was answered with an empty line.
        assert smtp.noop()[0] == 250
    finally:
        smtp.quit()
    assert refused.value.smtp_code == 535
    assert b"status=401" in refused.value.smtp_error
