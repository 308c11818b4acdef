"""Synthetic support traffic with a fixed seed: Polish and English, replies, HTML, attachments."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

# Benchmarks send their traffic faster than any real mailbox gets it (thousands of customers
# in one minute), which the flood limits rightly take for a storm and stop answering. They are
# off in benchmarks, so the figures measure the path every customer's mail takes.
NO_FLOOD_LIMITS = {
    "limits.auto_replies_per_minute": "0",
    "limits.auto_replies_per_domain_per_10min": "0",
}

FIRST = ["Jan", "Anna", "Piotr", "Katarzyna", "Paweł", "Małgorzata", "John", "Emma", "Łukasz"]
LAST = ["Kowalski", "Nowak", "Wiśniewska", "Wójcik", "Smith", "Brown", "Zając", "Kamińska"]
PL_SUBJECTS = [
    "Problem z dostawą komponentów",
    "Błąd w aplikacji po aktualizacji",
    "Pytanie o fakturę",
    "Rejestracja konta nie działa",
    "Zapytanie o politykę prywatności (RODO)",
    "Opóźniona przesyłka materiałów",
    "PILNE: awaria linii produkcyjnej",
]
EN_SUBJECTS = [
    "Delivery of components delayed",
    "Bug after the latest update",
    "Question about invoice",
    "Cannot complete registration",
    "Privacy policy question (GDPR)",
    "Urgent: production stopped",
]
PL_BODY = (
    "Dzień dobry,\n\nzgłaszam problem z zamówieniem nr {n}. Zażółć gęślą jaźń — dostawa miała "
    "dotrzeć w poniedziałek, ale do dziś nie otrzymaliśmy materiałów. Proszę o informację, "
    "kiedy możemy się jej spodziewać.\n\nPozdrawiam\n{name}\n"
)
EN_BODY = (
    "Hello,\n\nwe have a problem with order {n}. The delivery was due on Monday but the "
    "components have not arrived yet. Could you please let us know when to expect it?\n\n"
    "Kind regards\n{name}\n"
)
START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def _message(rng: random.Random, n: int, replies_to: list[tuple[str, str, str]]) -> bytes:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    sender = f"klient{rng.randrange(n // 3 + 50)}@firma{rng.randrange(500)}.pl"
    polish = rng.random() < 0.7
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = "pomoc@4dustry.com"
    msg["Date"] = format_datetime(START + timedelta(seconds=37 * n))
    msg["Message-ID"] = f"<bench.{n}.{rng.getrandbits(40):x}@firma.pl>"
    subject = rng.choice(PL_SUBJECTS if polish else EN_SUBJECTS)
    if replies_to and rng.random() < 0.25:  # a reply with proper threading headers
        parent_id, parent_subject, parent_sender = rng.choice(replies_to)
        subject = ("Odp: " if polish else "RE: ") + parent_subject
        msg.replace_header("From", f"{name} <{parent_sender}>")
        msg["In-Reply-To"] = parent_id
        msg["References"] = parent_id
    msg["Subject"] = subject
    body = (PL_BODY if polish else EN_BODY).format(n=n, name=name)
    kind = rng.random()
    if kind < 0.15:  # HTML-only
        html = (
            "<html><body>"
            + "".join(f"<p>{line}</p>" for line in body.splitlines())
            + "</body></html>"
        )
        msg.set_content(html, subtype="html", charset="utf-8")
    elif kind < 0.30 and polish:  # a windows-1250 part, as older Outlook sends
        msg.set_content(
            body.encode("cp1250"),
            maintype="text",
            subtype="plain",
            cte="quoted-printable",
            params={"charset": "windows-1250"},
        )
    else:
        msg.set_content(body)
    if rng.random() < 0.1:
        msg.add_attachment(
            rng.randbytes(rng.randrange(2_000, 60_000)),
            maintype="application",
            subtype="pdf",
            filename=f"zamówienie-{n}.pdf",
        )
    replies_to.append((msg["Message-ID"], subject, sender))
    return msg.as_bytes()


def messages(count: int, seed: int = 2026) -> Iterator[bytes]:
    """`count` raw messages, the same for the same seed."""
    rng = random.Random(seed)
    seen: list[tuple[str, str, str]] = []
    for n in range(count):
        yield _message(rng, n, seen)
        if len(seen) > 500:
            del seen[:250]
