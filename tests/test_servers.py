"""Self-tests for tests/servers.py: the real Dovecot and SMTP sink behave as the tests assume."""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from typing import IO

import imapclient.exceptions
import pytest

import tests.servers as servers
from tests.servers import Dovecot, SmtpSink, dovecot, smtp_sink

# The fixtures are used by name; importing them is what makes pytest see them here.
_FIXTURES = (dovecot, smtp_sink)


def _mail(subject: str, body: str = "Dzień dobry,\r\nproszę o pomoc.\r\n") -> bytes:
    return (
        "From: Klient <klient@example.com>\r\n"
        "To: pomoc@4dustry.com\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    ).encode() + body.encode()


def _require_tls(server: Dovecot | SmtpSink) -> str:
    if server.cafile is None:
        if servers._in_ci():
            pytest.fail("openssl is required in CI for the TLS tests")
        pytest.skip("openssl not installed: no test certificate")
    return server.cafile


# ------------------------------------------------------------------------------------ IMAP


def test_append_then_fetch_by_uid(dovecot: Dovecot) -> None:
    raw = _mail("first ticket")
    uid = dovecot.append(raw, flags=("\\Flagged",))
    other = dovecot.append(_mail("second ticket"))
    assert other > uid

    with dovecot.client() as client:
        client.select_folder("INBOX", readonly=True)
        data = client.fetch([uid], ["UID", "FLAGS", "BODY.PEEK[]"])
    assert data[uid][b"BODY[]"] == raw
    assert b"\\Flagged" in data[uid][b"FLAGS"]

    stored = dovecot.messages()
    assert [(m.uid, m.raw) for m in stored] == [(uid, raw), (other, _mail("second ticket"))]
    assert stored[0].flags == ("\\Flagged",)


def test_create_folder_and_second_user(dovecot: Dovecot) -> None:
    dovecot.create_folder("Tickets")
    uid = dovecot.append(_mail("filed"), folder="Tickets", flags=("\\Seen",))
    assert dovecot.messages("Tickets") == [(uid, ("\\Seen",), _mail("filed"))]
    assert dovecot.messages() == []

    dovecot.add_user("faktury@4dustry.com", "inne-haslo")
    dovecot.append(_mail("invoice"), user="faktury@4dustry.com")
    assert len(dovecot.messages(user="faktury@4dustry.com")) == 1
    assert dovecot.messages() == []  # separate mailboxes


def test_wrong_password_is_rejected(dovecot: Dovecot) -> None:
    with pytest.raises(imapclient.exceptions.LoginError):
        dovecot.client(password="wrong")


def test_idle_notifies_new_append_within_a_second(dovecot: Dovecot) -> None:
    with dovecot.client() as client:
        client.select_folder("INBOX")
        client.idle()
        started = time.monotonic()
        dovecot.append(_mail("arrives during IDLE"))
        responses = client.idle_check(timeout=1.0)
        elapsed = time.monotonic() - started
        client.idle_done()
    assert (1, b"EXISTS") in responses, responses
    assert elapsed < 1.0


def test_restart_keeps_messages_and_port(dovecot: Dovecot) -> None:
    uid = dovecot.append(_mail("survives restart"), flags=("\\Seen",))
    port, ssl_port = dovecot.port, dovecot.ssl_port
    dovecot.restart()
    assert (dovecot.port, dovecot.ssl_port) == (port, ssl_port)
    assert dovecot.messages() == [(uid, ("\\Seen",), _mail("survives restart"))]


@pytest.mark.parametrize("renumber", [False, True], ids=["doveadm-update", "rebuild-uidlist"])
def test_reset_uidvalidity_changes_it_and_keeps_messages(
    dovecot: Dovecot, renumber: bool
) -> None:
    dovecot.create_folder("Archive")
    for folder in ("INBOX", "Archive"):
        for subject in ("zero", "one", "two"):
            flags = ("\\Seen",) if subject == "one" else ()
            dovecot.append(_mail(f"{folder} {subject}"), folder=folder, flags=flags)
    with dovecot.client() as client:  # leave a gap: UIDs 2 and 3 remain
        client.select_folder("INBOX")
        client.delete_messages([1])
        client.expunge()
    before = {f: dovecot.uidvalidity(f) for f in ("INBOX", "Archive")}
    inbox_before = dovecot.messages()
    assert [m.uid for m in inbox_before] == [2, 3]

    new = dovecot.reset_uidvalidity(renumber=renumber)

    assert new > before["INBOX"]
    assert dovecot.uidvalidity() == new
    inbox_after = dovecot.messages()
    # The messages, their flags and their order survive; renumbering starts again at 1.
    assert [(m.flags, m.raw) for m in inbox_after] == [(m.flags, m.raw) for m in inbox_before]
    assert [m.uid for m in inbox_after] == ([1, 2] if renumber else [2, 3])
    # Only the named folder is affected.
    assert dovecot.uidvalidity("Archive") == before["Archive"]
    assert [m.uid for m in dovecot.messages("Archive")] == [1, 2, 3]


def test_uidvalidity_reset_seen_by_connected_client(dovecot: Dovecot) -> None:
    """A session holding the folder selected is cut off, as after a real server-side rebuild."""
    dovecot.append(_mail("selected"))
    with dovecot.client() as client:
        old = client.select_folder("INBOX")[b"UIDVALIDITY"]
        dovecot.reset_uidvalidity()
        # Dovecot answers "* BYE IMAP session state is inconsistent, please relogin".
        with pytest.raises(imapclient.exceptions.IMAPClientAbortError):
            client.noop()
    assert dovecot.uidvalidity() != old


def test_starttls_and_imaps_login_with_cafile(dovecot: Dovecot) -> None:
    _require_tls(dovecot)
    dovecot.append(_mail("over tls"))
    with dovecot.client(tls="starttls") as client:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 1
    with dovecot.client(tls="ssl") as client:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 1
    # The certificate is not trusted without the cafile: verification is real.
    untrusted = ssl.create_default_context(cafile=None)
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient(
            dovecot.host, dovecot.ssl_port, ssl=True, ssl_context=untrusted, timeout=5
        )


def _read_tagged(reader: IO[bytes], tag: bytes) -> bytes:
    lines = b""
    while True:
        line = reader.readline()
        if not line:
            raise AssertionError(f"EOF before {tag!r}: {lines!r}")
        lines += line
        if line.startswith(tag + b" "):
            return lines


def test_kill_drops_connection_mid_fetch(dovecot: Dovecot) -> None:
    # Bigger than the loopback socket buffers, so the server is still writing when killed.
    size = 16 * 1024 * 1024
    uid = dovecot.append(_mail("large", ("x" * 76 + "\r\n") * (size // 78)))

    with socket.create_connection((dovecot.host, dovecot.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        sock.sendall(f'a LOGIN "{dovecot.user}" "{dovecot.password}"\r\n'.encode())
        assert b"a OK" in _read_tagged(reader, b"a")
        sock.sendall(b"b SELECT INBOX\r\n")
        _read_tagged(reader, b"b")
        sock.sendall(f"c UID FETCH {uid} BODY.PEEK[]\r\n".encode())
        header = reader.readline()
        assert b"FETCH" in header and b"BODY[]" in header
        reader.read(64 * 1024)  # some of the literal has arrived: we are mid-fetch

        dovecot.kill()
        rest = reader.read()  # drains the buffers, then EOF

    assert len(rest) < size
    assert b"c OK" not in rest
    with pytest.raises(OSError):
        socket.create_connection((dovecot.host, dovecot.port), timeout=1).close()
    dovecot.start()  # same port, same mail
    assert [m.uid for m in dovecot.messages()] == [uid]


def test_drop_connections_kicks_session_but_server_stays_up(dovecot: Dovecot) -> None:
    with dovecot.client() as kicked:
        kicked.select_folder("INBOX")
        dovecot.drop_connections()
        deadline = time.monotonic() + 2
        with pytest.raises((imapclient.exceptions.IMAPClientError, OSError)):
            while time.monotonic() < deadline:  # the kick is asynchronous
                kicked.noop()
                time.sleep(0.01)
    with dovecot.client() as fresh:
        assert fresh.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0


def test_pause_makes_server_unresponsive_until_resumed(dovecot: Dovecot) -> None:
    with dovecot.client(timeout=0.3) as client:
        client.select_folder("INBOX")
        dovecot.pause()
        try:
            with pytest.raises((socket.timeout, OSError, imapclient.exceptions.IMAPClientError)):
                client.noop()
        finally:
            dovecot.resume()
    with dovecot.client() as client:
        client.noop()


def test_missing_dovecot_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "find_dovecot", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="dovecot is not installed"):
        servers.require_dovecot()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        servers.require_dovecot()


# ------------------------------------------------------------------------------------ SMTP


def _send(sink: SmtpSink, subject: str, **login: str) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        if login:
            smtp.login(login["user"], login["password"])
        smtp.sendmail("pomoc@4dustry.com", ["klient@example.com", "kopia@example.com"],
                      _mail(subject))


def test_sink_receives_message_sent_with_smtplib(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, "reply")
    [delivery] = smtp_sink.wait_for(1, timeout=2)
    assert delivery.mail_from == "pomoc@4dustry.com"
    assert delivery.rcpt_tos == ("klient@example.com", "kopia@example.com")
    assert delivery.raw == _mail("reply")
    assert delivery.message["Subject"] == "reply"
    assert delivery.auth_user is None and not delivery.tls


def test_sink_down_refuses_then_back_up_accepts(smtp_sink: SmtpSink) -> None:
    port = smtp_sink.port
    smtp_sink.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(smtp_sink.host, port, timeout=2)
    smtp_sink.start()
    assert smtp_sink.port == port
    _send(smtp_sink, "after outage")
    assert [d.message["Subject"] for d in smtp_sink.wait_for(1)] == ["after outage"]


def test_fail_with_returns_code_to_smtplib(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_with(451, "4.3.0 Try again later", times=2)
    smtp_sink.fail_with(554, "5.7.1 Rejected for policy reasons")
    for expected in (451, 451, 554):
        with pytest.raises(smtplib.SMTPDataError) as failure:
            _send(smtp_sink, f"attempt {expected}")
        assert failure.value.smtp_code == expected
    _send(smtp_sink, "finally")
    assert [d.message["Subject"] for d in smtp_sink.wait_for(1)] == ["finally"]
    assert [reply[:3] for _, reply in smtp_sink.rejected] == ["451", "451", "554"]


def test_next_responses_is_settable(smtp_sink: SmtpSink) -> None:
    smtp_sink.next_responses = ["452 4.3.1 Insufficient system storage"]
    with pytest.raises(smtplib.SMTPDataError) as failure:
        _send(smtp_sink, "full")
    assert failure.value.smtp_code == 452
    assert smtp_sink.next_responses == []
    with pytest.raises(ValueError):
        smtp_sink.next_responses = ["250 not a failure"]


def test_sink_auth_without_tls(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, "authenticated", user=smtp_sink.username, password=smtp_sink.password)
    assert smtp_sink.wait_for(1)[0].auth_user == smtp_sink.username
    with pytest.raises(smtplib.SMTPAuthenticationError):
        _send(smtp_sink, "bad login", user=smtp_sink.username, password="wrong")


def test_sink_starttls_with_cafile(smtp_sink: SmtpSink) -> None:
    cafile = _require_tls(smtp_sink)
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=cafile))
        smtp.login(smtp_sink.username, smtp_sink.password)
        smtp.sendmail("pomoc@4dustry.com", ["klient@example.com"], _mail("encrypted"))
    [delivery] = smtp_sink.wait_for(1)
    assert delivery.tls and delivery.auth_user == smtp_sink.username


def test_wait_for_times_out_quickly(smtp_sink: SmtpSink) -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match="expected 1 message"):
        smtp_sink.wait_for(1, timeout=0.1)
    assert time.monotonic() - started < 0.5


def test_sink_collects_from_many_threads(smtp_sink: SmtpSink) -> None:
    threads = [
        threading.Thread(target=_send, args=(smtp_sink, f"parallel {n}")) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    subjects = {d.message["Subject"] for d in smtp_sink.wait_for(8)}
    assert subjects == {f"parallel {n}" for n in range(8)}


# ------------------------------------------------------------------------------------ ports


def test_free_port_never_repeats_and_every_port_is_bindable() -> None:
    ports = [servers.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind((servers.LOOPBACK, port))
    low, _ = servers._ephemeral_range()
    assert all(port < low for port in ports)  # the kernel never hands these out by itself


def test_port_allocator_skips_ports_in_use() -> None:
    free = [servers.free_port(), servers.free_port()]  # kept free: nobody else gets them
    with socket.socket() as busy:
        busy.bind((servers.LOOPBACK, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        allocate = servers.PortAllocator([taken, *free])
        assert {allocate(), allocate()} == set(free)
        with pytest.raises(RuntimeError, match="no free TCP port"):
            allocate()


def test_parallel_workers_draw_from_disjoint_ports(monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    ports = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        ports.append(set(servers._listen_range()))
    assert len(ports[0]) > 1000 and len(ports[1]) > 1000 and not ports[0] & ports[1]
