"""A generated support mailbox for the history import: inbox and Sent mbox, and the true figures.

`archive()` writes an inbox mbox and a Sent mbox with a fixed seed: customers' requests spread
over the half year before the import (nights, weekends and holidays included), follow-ups
threaded by In-Reply-To, about 70 % of the tickets answered from the support address at known
times (one answer in twenty without references: it is matched by subject and recipient), and
a few newsletters. From what it generated alone it counts what the import must report:
tickets, answered, unanswered, within SLA, breached, waiting on the customer, skipped as
automatic. tests/test_history.py imports 2,000 messages; `python -m bench.history` 20,000.
"""

from __future__ import annotations

import mailbox
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime
from pathlib import Path

from mailbot.config import Config

SUPPORT = "Pomoc 4Dustry <pomoc@4dustry.com>"
SUBJECTS = [
    "Problem z dostawą komponentów",
    "Błąd w aplikacji po aktualizacji",
    "Pytanie o fakturę",
    "Delivery of components delayed",
    "Question about invoice",
    "Cannot complete registration",
]
REQUEST = (
    "Dzień dobry,\n\nzgłoszenie {n}: dostawa miała dotrzeć w poniedziałek, ale nie otrzymaliśmy "
    "materiałów. Proszę o informację.\n\nPozdrawiam\nKlient {c}\n"
)
ANSWER = (
    "Dzień dobry,\n\nsprawdziliśmy zgłoszenie {n}, przesyłka wyjdzie jutro.\n\nZespół 4Dustry\n"
)
FOLLOW_UP = "Dziękuję, a kiedy dokładnie? (zgłoszenie {n})\n"
SPAN = timedelta(days=180)


@dataclass
class Expected:
    """What the import must report for the archive, counted from the generator's own records."""

    messages: int = 0
    tickets: int = 0
    answered: int = 0
    unanswered: int = 0
    within_sla: int = 0
    breached: int = 0
    pending: int = 0  # our answer is the ticket's latest message
    automatic: int = 0
    received_at: list[str] = field(default_factory=list)  # each ticket's, as stored (UTC)


@dataclass
class Archive:
    inbox: Path
    sent: Path
    expected: Expected


def _mail(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    message_id: str,
    sent: datetime,
    received: datetime | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Plain UTF-8 mail as a mail client writes it (built directly: EmailMessage is slow)."""
    lines = []
    if received is not None:  # the line our MX put on top when it took the message
        lines.append(f"Received: from mx.firma.pl by mx.4dustry.com; {format_datetime(received)}")
    lines += [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {Header(subject, 'utf-8').encode()}",
        f"Date: {format_datetime(sent)}",
        f"Message-ID: {message_id}",
    ]
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    lines += [
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8; format=flowed",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def archive(
    directory: Path, messages: int, now: datetime, cfg: Config, seed: int = 2026
) -> Archive:
    """An inbox and a Sent mbox of about `messages` messages, and what importing them shows."""
    rng = random.Random(seed)
    inbox, sent = mailbox.mbox(directory / "Inbox.mbox"), mailbox.mbox(directory / "Sent.mbox")
    expected = Expected()
    start, last = now - SPAN, now - timedelta(hours=1)
    n = 0
    while expected.messages < messages:
        n += 1
        if rng.random() < 0.03:  # a newsletter: automatic, no ticket
            inbox.add(
                _mail(
                    sender="Newsletter <news@dostawca.pl>",
                    to="pomoc@4dustry.com",
                    subject=f"Nowości w ofercie {n}",
                    body="Zapraszamy do zapoznania się z ofertą.",
                    message_id=f"<news.{n}@dostawca.pl>",
                    sent=(when := _moment(rng, start, last)),
                    received=when,
                    headers={"List-Id": "<oferta.dostawca.pl>", "Precedence": "bulk"},
                )
            )
            expected.messages += 1
            expected.automatic += 1
            continue
        customer = f"klient{rng.randrange(messages // 4 + 10)}@firma{rng.randrange(300)}.pl"
        subject = f"{rng.choice(SUBJECTS)} ({n})"
        received = _moment(rng, start, last)
        request_id = f"<req.{n}.{rng.getrandbits(32):x}@firma.pl>"
        inbox.add(
            _mail(
                sender=customer,
                to="pomoc@4dustry.com",
                subject=subject,
                body=REQUEST.format(n=n, c=customer),
                message_id=request_id,
                sent=received - timedelta(seconds=7),
                received=received,
            )
        )
        expected.messages += 1
        expected.tickets += 1
        expected.received_at.append(received.astimezone(UTC).isoformat())
        due = cfg.calendar.first_response_due(received, cfg.sla.first_response)
        # Answers from 20 minutes to 6 days later, most within a day or two.
        answer_at = received + timedelta(minutes=20 + rng.expovariate(1 / 1800))
        answered = rng.random() < 0.7 and answer_at < now
        answer_id = f"<ans.{n}.{rng.getrandbits(32):x}@4dustry.com>"
        if answered:
            sent.add(
                _mail(
                    sender=SUPPORT,
                    to=customer,
                    subject=f"Re: {subject}",
                    body=ANSWER.format(n=n),
                    message_id=answer_id,
                    sent=answer_at,
                    in_reply_to=None if rng.random() < 0.05 else request_id,
                )
            )
            expected.messages += 1
            expected.answered += 1
            expected.within_sla += answer_at <= due
            expected.breached += answer_at > due
        else:
            expected.unanswered += 1
            expected.breached += due < now
        waiting = answered
        if rng.random() < 0.3:  # the customer writes again, before or after our answer
            follow_at = received + timedelta(minutes=10 + rng.expovariate(1 / 3000))
            after_answer = answered and follow_at > answer_at
            if follow_at < now:
                inbox.add(
                    _mail(
                        sender=customer,
                        to="pomoc@4dustry.com",
                        subject=f"Odp: {subject}",
                        body=FOLLOW_UP.format(n=n),
                        message_id=f"<fup.{n}.{rng.getrandbits(32):x}@firma.pl>",
                        sent=follow_at - timedelta(seconds=5),
                        received=follow_at,
                        in_reply_to=answer_id if after_answer else request_id,
                    )
                )
                expected.messages += 1
                waiting = answered and not after_answer
        expected.pending += waiting
    inbox.close()
    sent.close()
    return Archive(directory / "Inbox.mbox", directory / "Sent.mbox", expected)
