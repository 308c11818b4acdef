"""Render outgoing mail from sandboxed Jinja2 templates in templates/<lang>/<name>.txt.j2.

A template's first line is `Subject: ...`, then a blank line, then the body. Values from inbound
mail are passed as variables only, never compiled, so `{{7*7}}` in a customer's subject stays text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from functools import lru_cache
from pathlib import Path

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
    "agent_assigned",  # to an agent another agent assigned a ticket to: its story so far
)


def format_size(size: int, language: str) -> str:
    """'850 B', '120 kB', '1,2 MB' (decimal units, as config sizes like "10 MB" are read)."""
    for unit, scale, pattern in (("MB", 1e6, "#,##0.#"), ("kB", 1e3, "#,##0")):
        if size >= scale:
            return f"{format_decimal(size / scale, pattern, locale=language)} {unit}"
    return f"{size} B"


@lru_cache(maxsize=16)
def _plural_form(language: str) -> Locale:
    return Locale.parse(language)


def plural(count: int, language: str, *forms: str) -> str:
    """The form of a noun for `count`: forms one, few, many (Polish) or one, other (English).

    Chosen by the CLDR plural category of the language: 'załącznik', 'załączniki', 'załączników'.
    """
    category = _plural_form(language).plural_form(count)
    index = {"one": 0, "two": 1, "few": 1, "many": 2}.get(category, len(forms) - 1)
    return forms[min(index, len(forms) - 1)]


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


@lru_cache(maxsize=4096)  # Babel formatting is slow, and a ticket's due time recurs in its mails
def format_when(moment: datetime, language: str) -> str:
    """'środa, 2 grudnia 2026, 09:00' / 'Wednesday, December 2, 2026, 09:00'."""
    return f"{format_date(moment, 'full', locale=language)}, {format_time(moment, 'HH:mm')}"


@lru_cache(maxsize=64)
def format_hours(days: tuple[int, ...], opens: time, closes: time, language: str) -> str:
    """Business hours as people write them: 'poniedziałek–piątek 08:00–18:00'."""
    names = get_day_names("wide", locale=language)
    if list(days) == list(range(days[0], days[-1] + 1)) and len(days) > 1:
        span = f"{names[days[0]]}–{names[days[-1]]}"
    else:
        span = ", ".join(names[d] for d in days)
    return f"{span} {opens:%H:%M}–{closes:%H:%M}"


def add_filters(env: jinja2.Environment) -> None:
    """Filters for templates: `when`, `filesize`, `plural` (the last two in its language)."""
    env.filters["when"] = format_when
    env.filters["filesize"] = jinja2.pass_context(
        lambda ctx, size: format_size(size, ctx["language"])
    )
    env.filters["plural"] = jinja2.pass_context(
        lambda ctx, count, *forms: f"{count} {plural(count, ctx['language'], *forms)}"
    )


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
