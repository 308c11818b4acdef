"""Agents authenticated by our MTA's Authentication-Results: real shapes pass, forgeries do not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailbot.mail import authres
from tests.helpers import WARSAW_NOON, Mailbot, body_of, make_mail

ANNA = "Anna Kowalska <anna@4dustry.com>"
COMMAND = "#czeka\n\nProszę o numer zamówienia.\n\nAnna Kowalska\n4Dustry"


def agent_mail(*results: str, sender: str = ANNA) -> bytes:
    """Anna's fresh mail on ticket 1 (no token), with Authentication-Results on top, as the
    receiving MTA prepends them (the first given is the topmost)."""
    raw = make_mail(sender=sender, subject="Re: [4Dustry #1] Dostawa", body=COMMAND)
    return b"".join(f"Authentication-Results: {v}\r\n".encode() for v in results) + raw


def run(tmp_path, trusted: str, *results: str) -> tuple[dict, list[str]]:
    """Ticket 1 after Anna's mail, and who outside 4Dustry got mail from it."""
    bot = Mailbot(tmp_path, settings={"mailbot.trusted_authserv_ids": f'["{trusted}"]'})
    try:
        bot.deliver(make_mail(subject="Dostawa"))
        before = len(bot.outbox())
        bot.deliver(agent_mail(*results), now=WARSAW_NOON + timedelta(hours=1))
        customers = [
            body_of(m) for m in bot.outbox()[before:] if not m["To"].endswith("@4dustry.com")
        ]
        return dict(bot.ctx.store.tickets.get(1)), customers
    finally:
        bot.close()


def assert_verified(tmp_path, trusted: str, *results: str) -> None:
    ticket, customers = run(tmp_path, trusted, *results)
    assert ticket["status"] == "pending"
    assert len(customers) == 1 and customers[0].startswith("Proszę o numer zamówienia.")


def assert_refused(tmp_path, trusted: str, *results: str) -> None:
    ticket, customers = run(tmp_path, trusted, *results)
    assert ticket["status"] == "open"
    assert customers == []


# -- headers as real MTAs write them -------------------------------------------------------------

GOOGLE = (
    "mx.google.com;\r\n"
    "       dkim=pass header.i=@4dustry.com header.s=google header.b=PqBP51+l;\r\n"
    "       spf=pass (google.com: domain of anna@4dustry.com designates 209.85.220.41 as"
    " permitted sender) smtp.mailfrom=anna@4dustry.com;\r\n"
    "       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=4dustry.com"
)
MICROSOFT = (
    "spf=pass (sender IP is 40.107.22.87)\r\n smtp.mailfrom=4dustry.com; dkim=pass (signature was"
    " verified)\r\n header.d=4dustry.com;dmarc=pass action=none\r\n"
    " header.from=4dustry.com;compauth=pass reason=100"
)
OPENDKIM = "mail.4dustry.com; dkim=pass (2048-bit key; unprotected) header.d=4dustry.com"
OPENDKIM += " header.i=@4dustry.com header.a=rsa-sha256 header.s=mail header.b=Xc9bD4kq"
OPENDMARC = "mail.4dustry.com; dmarc=pass (p=reject dis=none) header.from=4dustry.com"
SPF = "mail.4dustry.com; spf=pass smtp.mailfrom=anna@4dustry.com smtp.helo=out.4dustry.com"
RSPAMD = (
    "mail.4dustry.com;\r\n\tdkim=pass header.d=4dustry.com header.s=dkim header.b=abc123=;\r\n"
    "\tspf=pass (mail.4dustry.com: domain of anna@4dustry.com designates 192.0.2.10 as"
    ' permitted sender) smtp.mailfrom="anna"@4dustry.com;\r\n'
    "\tdmarc=pass (policy=reject) header.from=4dustry.com"
)


def test_parser_reads_real_shapes() -> None:
    microsoft = authres.parse(MICROSOFT.replace("\r\n", ""))
    assert microsoft is not None and microsoft.authserv_id == ""
    assert [(r.method, r.result) for r in microsoft.results] == [
        ("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass"), ("compauth", "pass"),
    ]  # fmt: skip
    assert microsoft.of("dmarc")[0].properties["header.from"] == "4dustry.com"
    google = authres.parse(GOOGLE.replace("\r\n", ""))
    assert google is not None and google.authserv_id == "mx.google.com"
    assert google.of("dkim")[0].properties["header.b"] == "PqBP51+l"
    assert authres.parse("mx.4dustry.com 1; none") == authres.AuthResults("mx.4dustry.com", ())
    # Comments and quoted strings are text, never results.
    quoted = authres.parse('mx.4dustry.com; spf=pass smtp.mailfrom="dmarc=pass"@evil.example')
    assert quoted is not None and [r.method for r in quoted.results] == ["spf"]
    assert authres.parse("mx.4dustry.com; spf=pass (dmarc=pass") is None  # unbalanced comment
    assert authres.parse("mx4.example.com from=example.jp; domainkeys=neutral") is None


@pytest.mark.parametrize(
    ("trusted", "results"),
    [
        ("mx.google.com", [GOOGLE]),  # Google Workspace: one header, every method
        ("protection.outlook.com", [MICROSOFT]),  # Microsoft 365: no authserv-id
        ("mail.4dustry.com", [OPENDKIM, OPENDMARC, SPF]),  # one header per milter, DKIM on top
        ("mail.4dustry.com", [SPF, OPENDMARC]),  # an SPF-only result above the DMARC one
        ("mail.4dustry.com", [RSPAMD]),
    ],
    ids=["google-workspace", "microsoft-365", "opendkim-opendmarc", "spf-above", "rspamd"],
)
def test_dmarc_pass_from_our_mta_authenticates_the_agent(tmp_path, trusted, results) -> None:
    assert_verified(tmp_path, trusted, *results)


FAIL = "mx.4dustry.com; spf=pass smtp.mailfrom=anna@4dustry.com; dmarc=fail header.from=4dustry.com"
BYPASSES = {
    # text the attacker controls inside our MTA's own header
    "dkim header.i": "mx.4dustry.com; dkim=pass header.i=dmarc=pass@evil.example"
    " header.d=evil.example; dmarc=fail (p=reject) header.from=4dustry.com",
    "smtp.mailfrom": "mx.4dustry.com; spf=pass smtp.mailfrom=dmarc=pass@evil.example;"
    " dmarc=fail header.from=4dustry.com",
    "quoted mailfrom": 'mx.4dustry.com; spf=pass smtp.mailfrom="dmarc=pass"@evil.example;'
    " dmarc=fail header.from=4dustry.com",
    "spf comment": "mx.4dustry.com; spf=pass (mx.4dustry.com: domain of dmarc=pass@evil.example"
    " designates 203.0.113.9 as permitted sender) smtp.mailfrom=evil.example;"
    " dmarc=fail header.from=4dustry.com",
    "pass for another domain": "mx.4dustry.com; dmarc=pass header.from=evil.example",
    "no header.from": "mx.4dustry.com; dmarc=pass",
}


@pytest.mark.parametrize("header", BYPASSES.values(), ids=BYPASSES.keys())
def test_forged_text_inside_our_mtas_header_does_not_authenticate(tmp_path, header) -> None:
    assert_refused(tmp_path, "mx.4dustry.com", header)


def test_a_pass_below_our_mtas_fail_is_not_honoured(tmp_path) -> None:
    forged = "mx.4dustry.com; dmarc=pass header.from=4dustry.com"
    assert_refused(tmp_path, "mx.4dustry.com", FAIL, forged)
    # Our MTA's SPF header above the forged one: the fail sits in a separate header further down.
    spf = "mx.4dustry.com; spf=pass smtp.mailfrom=evil.example"
    (tmp_path / "2").mkdir()
    assert_refused(tmp_path / "2", "mx.4dustry.com", spf, FAIL.replace("spf=pass", "spf=none"))


def test_a_forged_trusted_header_below_another_mtas_is_not_honoured(tmp_path) -> None:
    """Our MTA added none (e.g. mail delivered by another hop): what came with the mail is the
    attacker's."""
    forged = "mx.4dustry.com; dmarc=pass (p=reject) header.from=4dustry.com"
    other = "mx.example.net; spf=pass smtp.mailfrom=evil.example"
    assert_refused(tmp_path, "mx.4dustry.com", other, forged)


def test_a_forged_header_under_our_mtas_received_line_is_not_honoured(tmp_path) -> None:
    """Our MTA wrote no DMARC verdict; a trusted-looking one further down came with the mail."""
    ours = "mx.4dustry.com; spf=pass smtp.mailfrom=anna@4dustry.com"
    forged = make_mail(
        sender=ANNA,
        subject="Re: [4Dustry #1] Dostawa",
        body=COMMAND,
        headers={"Authentication-Results": "mx.4dustry.com; dmarc=pass header.from=4dustry.com"},
    )
    received = "from out.evil.example (out.evil.example [203.0.113.9]) by mx.4dustry.com"
    raw = f"Authentication-Results: {ours}\r\nReceived: {received}\r\n".encode() + forged
    bot = Mailbot(tmp_path, settings={"mailbot.trusted_authserv_ids": '["mx.4dustry.com"]'})
    try:
        bot.deliver(make_mail(subject="Dostawa"))
        bot.deliver(raw, now=WARSAW_NOON + timedelta(hours=1))
        assert bot.ctx.store.tickets.get(1)["status"] == "open"
        [note] = bot.ctx.store.rows("messages", verified=0)
        assert note["kind"] == "note"
        assert not [m for m in bot.outbox() if m["To"] == "jan@klient.pl"][1:]  # the ack only
    finally:
        bot.close()
