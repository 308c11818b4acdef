"""Seeding: many realistic tickets in a mailbot database, fast, for tests and benchmarks.

`seed_tickets(ctx, count, now=...)` writes by bulk insert what the pipeline and an agent
would have written for `count` tickets that arrived in business hours between `since` and
`now`: the raw mail (inbound), the ticket, its requester, messages, events, outbox rows (sent),
SLA timers, and the agent's answer for the tickets that got one.

Nothing here decides anything about a ticket. For each kind of message (a subject in a
language) and each end state, a sample ticket goes through the real pipeline, `accept` and
`process_pending`, inside a transaction that is rolled back: its rows are the pattern. Each
ticket copies the pattern of its kind and state with its own values in place of the sample's:
ids, times, customer, Message-IDs (ours signed again by the install's signer), due time from
the calendar, timer moments from `sla_timers`. So the schema comes from the migrations;
subject, language, priority, topic, notified agents, mail texts and event texts from the
product; the queue counter from its triggers. The end states (`STATES`):

- queued: open, unanswered; its SLA timers fired when due, the others still scheduled;
- answered: an agent answered; pending: with #czeka; closed: with #zamknij.

Not written: attachments, CCs, customers writing again, and what fired timers sent.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

from mailbot import notices, tokens
from mailbot.context import Context
from mailbot.intake import accept
from mailbot.sla_timers import timer_slots
from mailbot.store import Store, to_db
from mailbot.worker import process_pending

STATES = ("queued", "answered", "pending", "closed")
# A year of tickets: nearly all closed. seed_tickets' `queue` leaves the newest ones queued.
MIX = {"closed": 0.95, "answered": 0.03, "pending": 0.02}
COMMANDS = {"answered": "", "pending": "#czeka\n", "closed": "#zamknij\n"}  # the agent's

FIRST = ["Jan", "Anna", "Piotr", "Katarzyna", "Paweł", "Małgorzata", "John", "Emma", "Łukasz"]
LAST = ["Kowalski", "Nowak", "Wiśniewska", "Wójcik", "Smith", "Brown", "Zając", "Kamińska"]
SUBJECTS = {
    "pl": [
        "Problem z dostawą komponentów", "Błąd w aplikacji po aktualizacji", "Pytanie o fakturę",
        "Rejestracja konta nie działa", "Zapytanie o politykę prywatności (RODO)",
        "Opóźniona przesyłka materiałów", "PILNE: awaria linii produkcyjnej",
    ],
    "en": [
        "Delivery of components delayed", "Bug after the latest update", "Question about invoice",
        "Cannot complete registration", "Privacy policy question (GDPR)",
        "Urgent: production stopped",
    ],
}  # fmt: skip
BODIES = {
    "pl": "Dzień dobry,\n\nzgłaszam problem z zamówieniem nr {order}. Zażółć gęślą jaźń —"
    " termin minął w poniedziałek, a do dziś nie mamy odpowiedzi. Linia montażowa czeka,"
    " więc sprawa jest dla nas dość pilna. Proszę o informację, kiedy możemy się spodziewać"
    " rozwiązania.\n\nPozdrawiam\n{name}\n",
    "en": "Hello,\n\nwe have a problem with order {order}. It was due on Monday and we have"
    " heard nothing since. Our assembly line is waiting, so this is fairly urgent for us."
    " Could you please let us know when to expect a solution?\n\nKind regards\n{name}\n",
}
ANSWERS = {
    "pl": "Dzień dobry,\n\nsprawdziliśmy zamówienie nr {order}. Przesyłka wyjechała wczoraj z"
    " magazynu, poprawka jest już dostępna, a korekta faktury wysłana do księgowości.\n\n"
    "Pozdrawiam",
    "en": "Hello,\n\nwe checked order {order}. The parcel left our warehouse yesterday, a fix"
    " is available and the corrected invoice went to your accounts department.\n\nKind regards",
}
CUSTOMER_MAIL = """\
Return-Path: <{addr}>
Received: from mail.example (mail.example [10.{n}.{n}.17])
\tby mx (Postfix) with ESMTPS id {qid}; {date}
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example; s=mail2025;
\th=From:To:Subject:Date:Message-ID:MIME-Version; bh={bh};
\tb={sig}
Message-ID: {mid}
Date: {date}
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
Content-Language: {language}
From: {name} <{addr}>
To: {support}
Subject: {subject}
Content-Type: multipart/alternative; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

{text}
--{boundary}
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: 8bit

<!DOCTYPE html>
<html><head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head>
<body>
{html}
</body></html>
--{boundary}--
"""
AGENT_MAIL = """\
Message-ID: {mid}
Date: {date}
MIME-Version: 1.0
From: {name} <{addr}>
To: {support}
Subject: Re: {subject}
In-Reply-To: {notice}
References: {customer} {notice}
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

{commands}{text}

{quote}
"""

# The sample ticket's own values: strings that occur nowhere else in its rows, so that a copy
# replaces exactly them. `_values` adds the times and what follows from them.
SAMPLE = {
    "id": "987654321", "name": "Xqzname Xqzsurname", "addr": "xqzaddr@xqzdomain.pl",
    "order": "Xqzorder", "customer_mid": "<xqzcustomer@xqzdomain.pl>",
    "agent_mid": "<xqzagent@xqzagent.pl>",
}  # fmt: skip
SAMPLE_ARRIVAL = datetime(2031, 3, 3, 9, 17, 23, tzinfo=UTC)  # a Monday, in business hours
SAMPLE_ANSWER = SAMPLE_ARRIVAL + timedelta(minutes=47, seconds=11)
# The tables a ticket's rows live in, by the column naming the ticket, in an order in which
# a row comes after the rows it refers to; and the columns that refer to another row.
TABLES = {
    "tickets": "id", "inbound": "ticket_id", "outbox": "ticket_id", "messages": "ticket_id",
    "participants": "ticket_id", "events": "ticket_id", "timers": "ticket_id",
    "sla_pauses": "ticket_id", "escalations": "ticket_id",
}  # fmt: skip
REFERENCES = {
    "ticket_id": "tickets", "inbound_id": "inbound", "outbox_id": "outbox",
    "original_inbound": "inbound",
}  # fmt: skip
QUERIES = {
    table: f"SELECT * FROM {table} WHERE {key} = ? ORDER BY 1" for table, key in TABLES.items()
}


@dataclass(frozen=True)
class Seeded:
    """What seed_tickets wrote: the new tickets' ids, and rows per table."""

    tickets: range
    rows: dict[str, int]


def seed_tickets(
    ctx: Context,
    count: int,
    *,
    now: datetime,
    since: datetime | None = None,
    queue: float = 0.01,
    mix: Mapping[str, float] = MIX,
    rng: random.Random | None = None,
    bulk: bool = False,
    chunk: int = 5_000,
) -> Seeded:
    """Write `count` tickets that arrived between `since` (default: a year before `now`) and
    `now`, evenly over business time, to the second.

    The newest `queue` fraction is queued; each of the others ends in a state drawn from
    `mix` (weights by STATES name). 70 % write in Polish; customers come back (a third as many
    addresses as tickets). `bulk`: faster, for a database nobody uses meanwhile (no journal,
    no fsync, indexes made at the end: a crash loses it). The same `rng` seeds the same
    database, but for the signatures of our Message-IDs.
    """
    rng = rng or random.Random(f"mailbot.store.seed-{count}")
    if set(mix) - set(STATES):
        raise ValueError(f"unknown states in {sorted(mix)}; known: {', '.join(STATES)}")
    wanted = {state for state, weight in mix.items() if weight} | ({"queued"} if queue else set())
    patterns = {
        (language, subject, state): pattern
        for language, subjects in SUBJECTS.items()
        for subject in subjects
        for state, pattern in _samples(ctx, language, subject, wanted).items()
    }
    columns = {table: c for p in patterns.values() for table, c in p.columns.items()}
    copier = _Copier(ctx, patterns, now)
    first = copier.next_id["tickets"]
    counts: defaultdict[str, int] = defaultdict(int)
    queued_from = count - round(count * queue)
    states, weights = list(mix), list(mix.values())
    arrivals = _arrivals(ctx, count, since or now - timedelta(days=365), now, rng)
    with _bulk(ctx.store) if bulk else nullcontext():
        for start in range(0, count, chunk):
            rows: dict[str, list[list]] = defaultdict(list)
            for index in range(start, min(start + chunk, count)):
                arrival = next(arrivals)
                state = "queued" if index >= queued_from else rng.choices(states, weights)[0]
                language = "pl" if rng.random() < 0.7 else "en"
                subject = rng.choice(SUBJECTS[language])
                answer = arrival + timedelta(seconds=rng.randrange(600, 172_800))
                if answer >= now:
                    answer = arrival + (now - arrival) // 2
                k = rng.randrange(count // 3 + 50)
                domain = f"firma{k % 997}.pl"
                customer = {
                    "id": str(first + index), "addr": f"klient{k}@{domain}",
                    "name": f"{FIRST[k % len(FIRST)]} {LAST[k % len(LAST)]}",
                    "order": str(rng.randrange(10_000, 99_999)),
                    "customer_mid": f"<{rng.getrandbits(96):024x}@{domain}>",
                    "agent_mid": f"<{rng.getrandbits(96):024x}@{ctx.cfg.mailbot.domain}>",
                }  # fmt: skip
                values = _values(ctx, language, arrival, answer.replace(microsecond=0), customer)
                copier.copy((language, subject, state), values, rows)
            with ctx.store.atomic():
                for table, table_rows in rows.items():
                    names = columns[table]
                    ctx.store.conn.executemany(
                        f"INSERT INTO {table} ({', '.join(names)})"
                        f" VALUES ({', '.join('?' * len(names))})",
                        table_rows,
                    )
                    counts[table] += len(table_rows)
    return Seeded(range(first, first + count), dict(counts))


# -- the samples ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """A sample ticket's rows, ready to copy: (table, values, cells a copy changes) each.

    A cell is (index, kind, what, which): kind "field" puts value `what` of the ticket
    there, "text" the format string `what` filled with the ticket's values (`which`: as
    bytes), "ticket" the ticket's id, "new" a new row id, and "ref" the new id of the row
    `which` of table `what`, copied before.
    """

    rows: list[tuple[str, list, list[tuple]]]
    columns: dict[str, tuple[str, ...]]
    signed: list[tuple[str, str, str]]  # (field, purpose, recipient): our Message-IDs


class _Rollback(Exception):
    """Undoes the sample's writes."""


def _samples(ctx: Context, language: str, subject: str, states: set[str]) -> dict[str, Pattern]:
    """A sample ticket of this kind through the pipeline, then in turn each state's answer to
    it: the rows of each state, all rolled back again."""
    store, support = ctx.store, ctx.cfg.mailbot.address
    rng = random.Random(subject)
    text = BODIES[language].format_map(SAMPLE)
    raw = _mail(
        CUSTOMER_MAIL, addr=SAMPLE["addr"], n=rng.randrange(256),
        qid=f"{rng.getrandbits(44):011X}", date=format_datetime(SAMPLE_ARRIVAL),
        bh=f"{rng.getrandbits(256):064x}", sig=f"{rng.getrandbits(1024):0256x}",
        mid=SAMPLE["customer_mid"], language=language, name=SAMPLE["name"], support=support,
        subject=_header(subject), boundary=f"{rng.getrandbits(96):024x}", text=text,
        html="\n".join(f"<p>{line}</p>" if line else "<br>" for line in text.split("\n")),
    )  # fmt: skip
    found: dict[str, dict[str, list[dict]]] = {}
    with _rolled_back(store):
        # A placeholder, so that the sample gets SAMPLE's id, whose digits are unique.
        store.execute(
            "INSERT INTO tickets (id, subject, status, language, requester, created_at,"
            " updated_at) VALUES (?, '', 'closed', '', '', '', '')",
            (int(SAMPLE["id"]) - 1,),
        )
        accept(store, raw, source="smtp", now=SAMPLE_ARRIVAL, envelope_from=SAMPLE["addr"],
               envelope_to=[support])  # fmt: skip
        process_pending(ctx, SAMPLE_ARRIVAL)
        for state in states:
            with _rolled_back(store):
                if state in COMMANDS:
                    _answer(ctx, language, state)
                found[state] = {
                    table: [dict(row) for row in store.all(query, (SAMPLE["id"],))]
                    for table, query in QUERIES.items()
                }
    patterns = {}
    for state, rows in found.items():
        [ticket] = rows["tickets"] or [{"status": "missing", "first_response_at": None}]
        came_out = (ticket["status"], ticket["first_response_at"] is not None)
        wanted = ({"pending": "pending", "closed": "closed"}.get(state, "open"), state != "queued")
        inbound = [f"{r['status']}: {r['reason']}" for r in rows["inbound"] if r["reason"]]
        if came_out != wanted or inbound:  # the pipeline changed: say so rather than copy
            raise RuntimeError(f"seed: sample {subject!r} ({state}): {came_out}, {inbound}")
        patterns[state] = _pattern(ctx, language, rows)
    return patterns


@contextmanager
def _rolled_back(store: Store) -> Iterator[None]:
    """A transaction (or savepoint) that is always rolled back."""
    try:
        with store.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass


def _answer(ctx: Context, language: str, state: str) -> None:
    """The first agent notified answers the sample ticket, with the state's command."""
    notice = ctx.store.one(
        "SELECT to_addr, subject, body, message_id FROM outbox WHERE ticket_id = ?"
        " AND template = 'agent_new' ORDER BY id LIMIT 1",
        (SAMPLE["id"],),
    )
    agent = ctx.cfg.agent(notice["to_addr"]) if notice else None
    if notice is None or agent is None:
        raise ValueError("seed: no agent was notified of the sample ticket")
    raw = _mail(
        AGENT_MAIL, mid=SAMPLE["agent_mid"], date=format_datetime(SAMPLE_ANSWER),
        name=_header(agent.name), addr=agent.email, support=ctx.cfg.mailbot.address,
        subject=notice["subject"], notice=notice["message_id"],  # 8-bit: the id stays readable
        customer=SAMPLE["customer_mid"], commands=COMMANDS[state],
        text=ANSWERS[language].format_map(SAMPLE),
        quote="\n".join(f"> {line}".rstrip() for line in notice["body"].splitlines()),
    )  # fmt: skip
    accept(ctx.store, raw, source="smtp", now=SAMPLE_ANSWER, envelope_from=agent.email,
           envelope_to=[ctx.cfg.mailbot.address])  # fmt: skip
    process_pending(ctx, SAMPLE_ANSWER)


def _pattern(ctx: Context, language: str, found: dict[str, list[dict]]) -> Pattern:
    """The sample's rows with its own values (`_values` of SAMPLE) as fields to fill."""
    sample = _values(ctx, language, SAMPLE_ARRIVAL, SAMPLE_ANSWER, SAMPLE)
    fields = {value: name for name, value in sample.items()}
    key = found["tickets"][0]["token_key"]  # each copy gets its own (see `copy`)
    if key:
        fields[key] = "token_key"
    # Longest first; the same for every sample of a language, so compiled once.
    tokens = re.compile("|".join(map(re.escape, sorted(fields, key=len, reverse=True))))
    signed, ours = [], {}
    for n, row in enumerate(found["outbox"]):
        token = ctx.signer.parse(row["message_id"])
        assert token is not None, row["message_id"]
        ours[row["message_id"]] = f"signed{n}"
        signed.append((f"signed{n}", token.purpose, row["to_addr"]))

    def template(text: str) -> str:
        text = text.replace("{", "{{").replace("}", "}}")
        for mid, name in ours.items():  # before the tokens: they contain the sample's id
            text = text.replace(mid, "{" + name + "}")
        return tokens.sub(lambda m: "{" + fields[m.group()] + "}", text)

    rows = []
    for table, table_rows in found.items():
        for row in table_rows:
            cells: list[tuple] = []
            for index, (column, value) in enumerate(row.items()):
                target = "tickets" if column == "id" else REFERENCES.get(column)
                text = value.decode() if isinstance(value, bytes) else value
                if column == "id" and table != "tickets":
                    cells.append((index, "new", table, value))
                elif target == "tickets" and value is not None:
                    cells.append((index, "ticket", None, None))
                elif target and value is not None:
                    cells.append((index, "ref", target, value))
                elif isinstance(value, str) and (value in fields or value in ours):
                    cells.append((index, "field", fields.get(value) or ours[value], None))
                elif isinstance(text, str) and (
                    tokens.search(text) or any(m in text for m in ours)
                ):
                    cells.append((index, "text", template(text), isinstance(value, bytes)))
            rows.append((table, list(row.values()), cells))
    columns = {table: tuple(table_rows[0]) for table, table_rows in found.items() if table_rows}
    return Pattern(rows, columns, [(name, p, template(to)) for name, p, to in signed])


def _header(text: str) -> str:
    """A header value as mail clients write it: RFC 2047 when it is not ASCII."""
    return text if text.isascii() else Header(text, "utf-8").encode()


def _mail(template: str, **values: object) -> bytes:
    return template.format(**values).replace("\n", "\r\n").encode()


# -- the copies ----------------------------------------------------------------------------


def _values(
    ctx: Context, language: str, arrival: datetime, answer: datetime, customer: dict[str, str]
) -> dict[str, str]:
    """A ticket's values by name: `customer`'s, the times, the due time and what follows."""
    cfg = ctx.cfg
    due = cfg.calendar.first_response_due(arrival, cfg.sla.first_response)
    minute = to_db(due.replace(second=0))  # the texts show minutes: Babel's cache hits more
    values = {
        **customer,
        "arrival": to_db(arrival), "arrival_date": format_datetime(arrival),
        "answer": to_db(answer), "answer_date": format_datetime(answer),
        "due_local": due.isoformat(), "due": to_db(due),
    }  # fmt: skip
    for lang in {language, cfg.mailbot.default_language}:
        values[f"due_text_{lang}"] = notices.when(ctx.cfg, minute, lang)
    for kind, key, moment in timer_slots(cfg, due):
        values[f"timer_{kind}_{key}"] = to_db(moment)
    return values


def _arrivals(
    ctx: Context, count: int, since: datetime, now: datetime, rng: random.Random
) -> Iterator[datetime]:
    """`count` arrival times, to the second, spread evenly over business time, in order."""
    cal = ctx.cfg.calendar
    moment = since.replace(microsecond=0)
    total = int(cal.business_seconds_between(moment, now))
    if total <= 0:
        raise ValueError(f"seed: no business time between {since} and {now}")
    done = 0
    for offset in sorted(rng.randrange(total) for _ in range(count)):
        # From the previous arrival: a step of hours, not a walk over the whole year.
        moment = cal.add_business_seconds(moment, offset - done)
        done = offset
        yield moment.astimezone(UTC)


class _Copier:
    """Copies of the patterns, one per ticket, with new ids for every row."""

    def __init__(self, ctx: Context, patterns: dict[tuple, Pattern], now: datetime) -> None:
        self.ctx, self.patterns, self.now = ctx, patterns, to_db(now)
        self.next_id = {
            table: int(ctx.store.scalar(f"SELECT coalesce(max(id), 0) FROM {table}")) + 1
            for table in TABLES
            if table != "participants"
        }

    def copy(self, key: tuple[str, str, str], ticket: dict[str, str], rows: dict) -> None:
        """Append one ticket's rows to `rows`: the pattern `key` with the `ticket`'s values."""
        pattern, ticket_id = self.patterns[key], int(ticket["id"])
        ticket["token_key"] = tokens.new_ticket_key()
        for name, purpose, to in pattern.signed:
            ticket[name] = self.ctx.signer.message_id(
                ticket_id, purpose, to.format_map(ticket), ticket_key=ticket["token_key"]
            )
        # What happened since: the sender sent everything, timers fired when due.
        stop = self.now if key[2] == "queued" else ticket["answer"]
        ids: dict[tuple[str, int], int] = {}
        for table, sample, cells in pattern.rows:
            values = sample.copy()
            for index, kind, what, which in cells:
                if kind == "field":
                    values[index] = ticket[what]
                elif kind == "text":
                    text = what.format_map(ticket)
                    values[index] = text.encode() if which else text
                elif kind == "ticket":
                    values[index] = ticket_id
                elif kind == "new":
                    values[index] = ids[what, which] = self.next_id[table]
                    self.next_id[table] += 1
                else:
                    values[index] = ids[what, which]
            if table in ("inbound", "outbox", "timers"):
                row = dict(zip(pattern.columns[table], values, strict=True))
                if table == "inbound":  # as Store.store_inbound keeps them, for these bytes
                    row.update(sha256=hashlib.sha256(row["raw"]).hexdigest(), size=len(row["raw"]))
                elif table == "outbox":
                    row.update(status="sent", attempts=1, sent_at=row["next_attempt_at"])
                elif row["status"] in ("scheduled", "cancelled") and row["due_at"] <= stop:
                    row.update(status="fired", fired_at=row["due_at"])
                values = list(row.values())
            rows[table].append(values)


@contextmanager
def _bulk(store: Store) -> Iterator[None]:
    """No journal, no fsync, a big cache, and secondary indexes made once at the end instead
    of taking each row at a random place; then the settings as they were."""
    conn = store.conn
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).fetchall()
    pragmas = ("journal_mode", "synchronous", "cache_size")
    before = {pragma: conn.execute(f"PRAGMA {pragma}").fetchone()[0] for pragma in pragmas}
    for pragma, value in zip(pragmas, ("OFF", "OFF", -1_000_000), strict=True):
        conn.execute(f"PRAGMA {pragma}={value}")
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    try:
        yield
    finally:
        for _, sql in indexes:
            conn.execute(sql)
        for pragma, value in before.items():
            conn.execute(f"PRAGMA {pragma}={value}")
