"""Big messages and many agents: notices quote a bounded text, rendered once, in bounded memory."""

from __future__ import annotations

import json
import quopri
import subprocess
import sys
import textwrap
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot import config as config_module
from mailbot import notices
from mailbot.templates import Templates
from tests.helpers import ROOT, Mailbot, write_config

# A controller's log as a customer pastes it into Thunderbird: Polish letters, one event a
# line, no [[topics]] keyword (the ticket goes to every agent).
LOG_LINE = "2026-12-01 07:{m:02d}:{s:02d} linia-3 sterownik PLC: przekroczony czas czujnika {n}\n"


def pasted_log(lines: int) -> str:
    return "".join(LOG_LINE.format(m=n // 60 % 60, s=n % 60, n=n) for n in range(lines))


def thunderbird_mail(
    text: str,
    message_id: str = "8d3f0c2a-5b7e-4c1d-9a6f-2e4b8c0d1f3a",
    subject: str = "Log sterownika z linii 3",
) -> bytes:
    """Plain-text mail as Thunderbird 128 sends it: format=flowed, 8bit UTF-8, its own ids."""
    head = (
        f"Message-ID: <{message_id}@firma.pl>\r\n"
        "Date: Tue, 1 Dec 2026 11:02:13 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "User-Agent: Mozilla Thunderbird\r\n"
        "Content-Language: pl\r\n"
        "To: pomoc@4dustry.com\r\n"
        "From: Jan Kowalski <jan.kowalski@firma.pl>\r\n"
        f"Subject: {subject}\r\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    body = "Dzień dobry,\n\nponiżej log sterownika z dzisiejszego ranka.\n\n" + text
    return head.encode() + body.replace("\n", "\r\n").encode()


def gmail_mail(text: str) -> bytes:
    """Plain-text mail as Gmail's web client sends it: quoted-printable UTF-8, its id shape."""
    head = (
        "MIME-Version: 1.0\r\n"
        "Date: Tue, 1 Dec 2026 11:02:13 +0100\r\n"
        "Message-ID: <CAJ8x+vQ3mZpL5nR7tW0yK2bH4dF6gS9aE1cU_oX=Tf@mail.gmail.com>\r\n"
        "Subject: Log sterownika z linii 3\r\n"
        "From: Jan Kowalski <jan.kowalski@firma.pl>\r\n"
        "To: pomoc@4dustry.com\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    body = "Dzień dobry,\n\nponiżej log sterownika z dzisiejszego ranka.\n\n" + text
    return head.encode() + quopri.encodestring(body.replace("\n", "\r\n").encode())


def plain(message: EmailMessage) -> str:
    """A notice's text with its lines as Python reads them."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def agents_toml(count: int) -> str:
    """[[agents]] that bring the shipped config's two agents up to `count`."""
    return "".join(
        f'\n[[agents]]\nemail = "agent{n}@4dustry.com"\nname = "Agent {n}"\n'
        for n in range(3, count + 1)
    )


def test_a_pasted_log_is_cut_in_agents_notices_and_kept_whole_on_the_ticket(tmp_path: Path):
    bot = Mailbot(tmp_path)
    log = pasted_log(4000)  # ~330 kB, over the shipped text_max of 100 kB
    inbound_id = bot.deliver(thunderbird_mail(log))
    notes = [m for m in bot.outbox() if m["To"] in ("anna@4dustry.com", "tomasz@4dustry.com")]
    assert len(notes) == 2
    for note in notes:
        body = plain(note)
        quoted = body.split("----- wiadomość klienta -----\n", 1)[1]
        assert quoted.startswith("Dzień dobry,\n\nponiżej log sterownika")
        head, _, tail = quoted.partition("[…]\n")
        assert len(head.encode()) <= 100_000
        # Cut at a line end: the last quoted line is a whole line of the log.
        last = head.rstrip("\n").rsplit("\n", 1)[-1]
        assert last + "\n" in log and last.startswith("2026-12-01") and last[-1].isdigit()
        assert tail.startswith(
            "(Tekst skrócony: powiadomienie cytuje najwyżej 100 kB.\nCałą wiadomość (3"
        )  # the whole message's size, ~335 kB, and the command that gets it
        assert tail.endswith(f" kB) administrator pobierze poleceniem: mailbot raw {inbound_id})\n")
    # The raw bytes on the wire stay small, for every agent.
    sizes = [p.stat().st_size for p in (bot.cfg.outbound.path / "new").iterdir()]
    assert max(sizes) < 150_000
    # The ticket keeps the customer's whole text.
    [kept] = bot.ctx.store.rows("messages", direction="in")
    assert kept["text"].rstrip().endswith(log.rstrip().rsplit("\n", 1)[-1])
    assert len(kept["text"]) > len(log)
    bot.close()


def test_a_cut_follow_up_points_to_the_original_it_carries(bot: Mailbot):
    bot.deliver(thunderbird_mail(pasted_log(5)))
    [ticket] = bot.tickets()
    bot.deliver(
        thunderbird_mail(
            pasted_log(3000),
            message_id="1f0e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            subject=f"Re: [4Dustry #{ticket['id']}] Log sterownika z linii 3",
        )
    )
    followups = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"][1:]
    assert len(followups) == 1
    [note] = followups
    body = plain(note)
    assert body.rstrip().endswith(
        "[…]\n(Tekst skrócony: powiadomienie cytuje najwyżej 100 kB.\n"
        "Cała wiadomość jest w załączniku original.eml.)"
    )
    assert [part.get_filename() for part in note.iter_attachments()] == ["original.eml"]


def test_a_short_text_is_quoted_whole_without_a_cut_note(bot: Mailbot):
    bot.deliver(thunderbird_mail(pasted_log(20)))
    [note] = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"]
    body = plain(note)
    assert body.rstrip().endswith(pasted_log(20).rstrip().rsplit("\n", 1)[-1])
    assert "Tekst skrócony" not in body and "[…]" not in body


def test_an_unverified_agent_mail_is_quoted_within_the_bound_too(tmp_path: Path):
    bot = Mailbot(tmp_path, settings={"notifications.text_max": '"2 KB"'})
    bot.deliver(thunderbird_mail(pasted_log(10)))
    [ticket] = bot.tickets()
    forged = (
        "Message-ID: <forged.1@example.net>\r\n"
        "Date: Tue, 1 Dec 2026 12:00:00 +0100\r\n"
        "From: Anna Kowalska <anna@4dustry.com>\r\n"
        "To: pomoc@4dustry.com\r\n"
        f"Subject: Re: [4Dustry #{ticket['id']}] Log sterownika z linii 3\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + ("#zamknij\r\n" + pasted_log(200).replace("\n", "\r\n")).encode()
    inbound_id = bot.deliver(forged)
    warnings = [m for m in bot.outbox() if "UWAGA" in m["Subject"]]
    assert {m["To"] for m in warnings} == {"anna@4dustry.com", "tomasz@4dustry.com"}
    for warning in warnings:
        body = plain(warning)
        quoted = body.split("----- treść -----\n", 1)[1]
        assert len(quoted.split("[…]\n")[0].encode()) <= 2000
        assert "(Tekst skrócony: powiadomienie cytuje najwyżej 2 kB." in quoted
        assert f"poleceniem: mailbot raw {inbound_id})" in quoted
    bot.close()


def test_english_staff_read_the_cut_note_in_english(tmp_path: Path):
    bot = Mailbot(
        tmp_path,
        settings={"notifications.text_max": '"5 KB"', "mailbot.default_language": '"en"'},
    )
    bot.deliver(thunderbird_mail(pasted_log(400)))
    [note] = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"]
    body = plain(note)
    assert "[…]\n(Text cut: a notification quotes at most 5 kB.\n" in body
    assert "An admin gets the whole message (" in body and ") with: mailbot raw 1)" in body
    bot.close()


def test_notices_to_ten_agents_are_rendered_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bot = Mailbot(tmp_path, agents_toml(10))
    rendered: list[str] = []
    original = Templates.render

    def counting(self: Templates, name: str, language: str, **context: object):  # type: ignore[no-untyped-def]
        rendered.append(name)
        return original(self, name, language, **context)

    monkeypatch.setattr(Templates, "render", counting)
    bot.deliver(thunderbird_mail(pasted_log(30)))
    notes = [m for m in bot.outbox() if m["To"].endswith("@4dustry.com")]
    assert len(notes) == 10  # every agent is told
    assert rendered.count("agent_new") == 1
    bodies = {plain(m) for m in notes}
    assert len(bodies) == 1  # the same text to each, only the recipients differ
    assert len({m["Message-ID"] for m in notes}) == 10
    bot.close()


def test_text_max_is_validated(tmp_path: Path):
    with pytest.raises(config_module.ConfigError, match="text_max: must be at least 1 KB"):
        config_module.load(write_config(tmp_path, settings={"notifications.text_max": '"500 B"'}))


@pytest.mark.parametrize(
    ("text", "limit", "cut"),
    [
        ("krótki tekst\n", 1000, False),
        ("ą" * 500, 1000, False),  # 1000 bytes exactly
        ("ą" * 501, 1000, True),
        ("linia\n" * 1000, 1000, True),
    ],
)
def test_quoted_text_counts_utf8_bytes_and_cuts_at_a_line_end(text: str, limit: int, cut: bool):
    quoted, was_cut = notices.quoted_text(text, limit)
    assert was_cut is cut
    assert len(quoted.encode()) <= limit
    assert text.startswith(quoted)
    if "\n" in text and cut:
        assert text[len(quoted)] == "\n"


# Processing and sending a 25 MB pasted log to ten agents, in a fresh interpreter: the peak
# of Python allocations (tracemalloc: not timing-dependent). Before notices were bounded it
# was 349 MiB (every agent's notice rendered and composed the whole text); now ~180 MiB:
# parsing holds the raw bytes, the message's payload and the decoded text, and storing the
# text on the ticket encodes it to UTF-8 once.
MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from pathlib import Path
    from tests.helpers import Mailbot, WARSAW_NOON
    from tests.test_memory import agents_toml, gmail_mail, pasted_log

    bot = Mailbot(Path(sys.argv[1]), agents_toml(10))
    raw = gmail_mail(pasted_log(312_000))
    size = len(raw)
    bot.feed(raw, WARSAW_NOON)
    del raw
    tracemalloc.start()
    summary = bot.run(WARSAW_NOON)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    sent = [p.stat().st_size for p in (bot.cfg.outbound.path / "new").iterdir()]
    print(json.dumps({"size": size, "peak": peak, "sent": sent, "summary": summary}))
    """
)


def test_a_25_mb_message_to_ten_agents_stays_within_a_memory_bound(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["size"] > 24_500_000  # just under the shipped 25 MB limit
    assert len(figures["sent"]) == 11  # the ack and ten notices
    assert max(figures["sent"]) < 150_000  # each notice quotes at most text_max
    assert figures["peak"] < 250 * 1024 * 1024, figures
