"""Render outgoing mail from sandboxed Jinja2 templates in templates/<lang>/<name>.txt.j2.

A template's first line is `Subject: ...`, then a blank line, then the body. Values from inbound
mail are passed as variables only, never compiled, so `{{7*7}}` in a customer's subject stays text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from babel import Locale
from babel.dates import format_date, format_time, get_day_names
from babel.numbers import format_decimal
from jinja2.sandbox import SandboxedEnvironment

# Every template the code renders; each must exist for every configured language.
TEMPLATE_NAMES = (
    "ack",  # new ticket: acknowledgement to the customer
    "queued",  # follow-up before the first answer: "your request is in the queue" (once)
    "agent_new",  # new ticket: notification to agents
    "agent_followup",  # customer wrote again: notification to the assignee or agents
    "reply",  # an agent's answer to the customer, with the footer
    "agent_error",  # to an agent: commands rejected or an empty reply; nothing was sent
    "agent_unverified",  # to agents: mail claiming an agent's address failed authentication
    "sla_warning",  # to the assignee (or the ticket's agents): first response due soon
    "sla_breach",  # to the leads ([sla] notify): a first response is overdue
    "manager_urgent",  # to the customer's account manager: an urgent ticket (no customer text)
    "abuse_warning",  # to the customer: many urgent requests lately; the direct line may go
    "abuse_suspended",  # to the leads: a customer's urgent requests no longer page the manager
    "agent_digest",  # to an agent: their open tickets, overdue first (daily, and on #lista)
    "agent_assigned",  # to an agent another agent assigned a ticket to: its story so far
    "outbox_failing",  # to the leads: outgoing mail started failing for good (once an episode)
    "flood_tripped",  # to the leads: too many automatic answers at once; they are paused
)

# CLDR plural categories in the order `plural` takes a language's forms ("other" last).
PLURAL_ORDER = ("zero", "one", "two", "few", "many", "other")


def format_size(size: int, language: str) -> str:
    """'850 B', '120 kB', '1,2 MB' (decimal units, as config sizes like "10 MB" are read)."""
    for unit, scale, pattern in (("MB", 1e6, "#,##0.#"), ("kB", 1e3, "#,##0")):
        if size >= scale:
            return f"{format_decimal(size / scale, pattern, locale=language)} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


@lru_cache(maxsize=4096)  # Babel formatting is slow, and a ticket's due time recurs in its mails
def format_when(moment: datetime, language: str) -> str:
    """'środa, 2 grudnia 2026, 09:00' / 'Wednesday, December 2, 2026, 09:00'."""
    return f"{format_date(moment, 'full', locale=language)}, {format_time(moment, 'HH:mm')}"


# Polish day names after "w" (in the accusative): "w środę", "we wtorek" (w + w-), and month
# names in the genitive ("2 grudnia"). Tables, not Babel: these phrases are built for every
# mail about a ticket, and Babel's formatting costs ~50 µs a call.
_PL_ON_DAY = ("w poniedziałek", "we wtorek", "w środę", "w czwartek", "w piątek", "w sobotę",
              "w niedzielę")  # fmt: skip
_PL_MONTHS = ("stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca", "sierpnia",
              "września", "października", "listopada", "grudnia")  # fmt: skip
_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")  # fmt: skip


def when_phrase(moment: datetime, language: str, *, deadline: bool = False) -> str:
    """A moment as it stands in a sentence, after a verb.

    pl: 'w środę, 2 grudnia 2026 r., o 09:20' (deadline: '..., do godz. 18:00');
    en: 'on Wednesday, December 2, 2026, at 09:20' (deadline: 'by Wednesday, ..., 18:00').
    Babel's full date starts with the day name in the nominative ('środa, 2 grudnia 2026'),
    which after "w" must be the accusative, so Polish is built here. Other languages get
    `format_when` as it is.
    """
    clock = f"{moment:%H:%M}"
    if language == "pl":
        day = f"{moment.day} {_PL_MONTHS[moment.month - 1]} {moment.year}"
        at = f"do godz. {clock}" if deadline else f"o {clock}"
        return f"{_PL_ON_DAY[moment.weekday()]}, {day} r., {at}"
    if language == "en":
        day = (
            f"{_EN_DAYS[moment.weekday()]}, {_EN_MONTHS[moment.month - 1]} {moment.day},"
            f" {moment.year}"
        )
        return f"by {day}, {clock}" if deadline else f"on {day}, at {clock}"
    return format_when(moment, language)


def zone_phrase(moment: datetime, language: str) -> str:
    """Which clock a time in a customer's mail is read on: 'czasu polskiego', 'Warsaw time, CET'.

    The abbreviation (CET/CEST) is the one in force at `moment`; zones whose abbreviation is
    only an offset ('+03') are named by their city alone.
    """
    zone = getattr(moment.tzinfo, "key", "") or "UTC"
    abbreviation = moment.tzname() or ""
    if language == "pl":
        return "czasu polskiego" if zone == "Europe/Warsaw" else f"czasu strefy {zone}"
    city = zone.rpartition("/")[2].replace("_", " ")
    if language == "en" and zone != "UTC":
        return f"{city} time, {abbreviation}" if abbreviation.isalpha() else f"{city} time"
    return zone


@lru_cache(maxsize=64)
def format_hours(days: tuple[int, ...], opens: time, closes: time, language: str) -> str:
    """Business hours as people write them: 'poniedziałek–piątek 08:00–18:00'."""
    names = get_day_names("wide", locale=language)
    if list(days) == list(range(days[0], days[-1] + 1)) and len(days) > 1:
        span = f"{names[days[0]]}–{names[days[-1]]}"
    else:
        span = ", ".join(names[d] for d in days)
    return f"{span} {opens:%H:%M}–{closes:%H:%M}"


@lru_cache(maxsize=16)
def _plural_categories(language: str) -> tuple[tuple[str, ...], Any]:
    rule = Locale.parse(language).plural_form
    return tuple(c for c in PLURAL_ORDER if c in rule.tags or c == "other"), rule


def plural(count: int, language: str, *forms: str) -> str:
    """The word for `count` by the language's CLDR plural rules (Babel).

    `forms` follow the categories the language uses, in PLURAL_ORDER: Polish one, few, many
    ("zgłoszenie", "zgłoszenia", "zgłoszeń"); English one, other ("ticket", "tickets").
    A category without a form of its own takes the last form given.
    """
    categories, rule = _plural_categories(language)
    category = rule(count)
    index = categories.index(category) if category in categories else len(categories) - 1
    return forms[min(index, len(forms) - 1)]


@jinja2.pass_context
def _plural_filter(context: Any, count: int, *forms: str) -> str:
    """`{{ n | plural("zgłoszenie", "zgłoszenia", "zgłoszeń") }}` → "5 zgłoszeń"."""
    return f"{count} {plural(count, context['language'], *forms)}"


def add_filters(env: jinja2.Environment) -> None:
    """Filters for templates: `when`, `when_phrase`, and `filesize`, `plural` in its language."""
    env.filters["when"] = format_when
    env.filters["when_phrase"] = when_phrase
    env.filters["filesize"] = jinja2.pass_context(
        lambda ctx, size: format_size(size, ctx["language"])
    )
    env.filters["plural"] = _plural_filter


class Templates:
    """Loads and renders the templates of one templates directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain-text mail; HTML is never produced from these
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        add_filters(self.env)
        self._compiled: dict[tuple[str, str], jinja2.Template] = {}

    def render(self, name: str, language: str, **context: object) -> Rendered:
        template = self._compiled.get((name, language))
        if template is None:  # kept: get_template's cache costs a loader check per call
            template = self._compiled[name, language] = self.env.get_template(
                f"{language}/{name}.txt.j2"
            )
        text = template.render(language=language, **context)
        head, _, body = text.partition("\n")
        if not head.startswith("Subject:"):
            raise ValueError(f"{language}/{name}.txt.j2 must start with a 'Subject:' line")
        # The subject is one header line: newlines from values must never fold into new headers.
        subject = " ".join(head.removeprefix("Subject:").split())
        return Rendered(subject=subject, body=body.lstrip("\n").rstrip() + "\n")


@lru_cache(maxsize=8)
def load(directory: Path) -> Templates:
    return Templates(directory)


def missing_templates(directory: Path, languages: tuple[str, ...]) -> list[str]:
    """Problems with the templates: missing files or syntax errors, one line each.

    Every config load runs this (start, SIGHUP, each CLI command, each test's config), and
    compiling two dozen templates costs ~0.1 s; the answer is kept per directory, languages
    and template texts, so templates that did not change are not compiled again.
    """
    texts = []
    for language in languages:
        for name in TEMPLATE_NAMES:
            path = directory / f"{language}/{name}.txt.j2"
            texts.append(path.read_text(encoding="utf-8") if path.is_file() else None)
    return list(_template_problems(directory, tuple(languages), tuple(texts)))


@lru_cache(maxsize=8)
def _template_problems(
    directory: Path, languages: tuple[str, ...], texts: tuple[str | None, ...]
) -> tuple[str, ...]:
    problems = []
    env = SandboxedEnvironment()
    add_filters(env)
    names = [(language, name) for language in languages for name in TEMPLATE_NAMES]
    for (language, name), text in zip(names, texts, strict=True):
        rel = f"{language}/{name}.txt.j2"
        if text is None:
            problems.append(f"missing template {directory.name}/{rel}")
            continue
        try:
            env.compile(text, rel, str(directory / rel))  # what get_template() does
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{directory.name}/{rel}:{exc.lineno}: {exc.message}")
    return tuple(problems)
