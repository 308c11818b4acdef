"""Agent commands: `#word [argument]` lines at the top of an agent's reply, English or Polish.

`split` separates the command lines from the text; `parse` turns them into validated
`Command`s or raises `CommandError` listing every problem, so that nothing is half-applied.
Deciding what they change is the decide step's job (`agents`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.config import Agent, Config
from mailbot.mail.charsets import fold

COMMAND_LINE_RE = re.compile(r"^\s*#([^\W\d_][\w-]*)(?:[ \t]+(.*?))?\s*$")

# Every spelling (folded: lower case, no diacritics) → the command it means.
ALIASES = {
    "note": "note", "notatka": "note",
    "close": "close", "zamknij": "close",
    "pending": "pending", "czeka": "pending",
    "reopen": "reopen", "otworz": "reopen",
    "assign": "assign", "przypisz": "assign",
    "priority": "priority", "priorytet": "priority",
    "lang": "lang", "jezyk": "lang",
    "topic": "topic", "temat": "topic",
    "list": "list", "lista": "list",
}  # fmt: skip
TAKES_ARGUMENT = {"assign", "priority", "lang", "topic"}
PRIORITIES = {"urgent": "urgent", "pilny": "urgent", "normal": "normal", "normalny": "normal"}
HELP = """\
#note / #notatka                       internal note: nothing goes to the customer
#close / #zamknij                      close the ticket after this reply is sent
#pending / #czeka                      waiting on the customer; the SLA clock pauses
#reopen / #otworz                      reopen the ticket
#assign WHO / #przypisz WHO            WHO = an agent's email or name
#priority urgent|normal / #priorytet pilny|normalny
#lang pl|en / #jezyk pl|en             language of future mail to the customer
#topic NAME / #temat NAZWA             move the ticket to another topic
#list / #lista                         your open tickets by mail; nothing goes to the customer"""


@dataclass(frozen=True)
class Command:
    name: str  # canonical English name
    value: str = ""  # normalised argument: agent email, priority, language, topic name
    line: str = ""  # as the agent wrote it


class CommandError(Exception):
    """One or more command lines are wrong; `problems` says which and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def split(text: str) -> tuple[list[str], str]:
    """(command lines, the rest): commands are the `#word` lines before any other text."""
    lines = text.splitlines()
    commands: list[str] = []
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - index is used after the loop
        if not line.strip():
            continue
        if COMMAND_LINE_RE.match(line):
            commands.append(line.strip())
            continue
        break
    else:
        index = len(lines)
    return commands, "\n".join(lines[index:]).strip()


def find_agent(cfg: Config, who: str) -> Agent | None:
    """An agent by email, full name or first name, ignoring case and Polish letters."""
    wanted = fold(who.strip().strip("<>"))
    for agent in cfg.agents:
        names = {fold(agent.email), fold(agent.name), fold(agent.name.split()[0])}
        if wanted in names or wanted == fold(agent.email.split("@")[0]):
            return agent
    return None


def _value(cfg: Config, name: str, argument: str) -> str:
    """The validated argument of one command; ValueError says what is wrong."""
    if name in TAKES_ARGUMENT and not argument:
        raise ValueError("needs an argument")
    if name not in TAKES_ARGUMENT:
        if argument:
            raise ValueError("takes no argument")
        return ""
    if name == "assign":
        agent = find_agent(cfg, argument)
        if agent is None:
            raise ValueError(f"no agent {argument!r}")
        return agent.email
    if name == "priority":
        if fold(argument) not in PRIORITIES:
            raise ValueError("use urgent/normal (pilny/normalny)")
        return PRIORITIES[fold(argument)]
    if name == "lang":
        if fold(argument) not in cfg.mailbot.languages:
            raise ValueError(f"languages are {', '.join(cfg.mailbot.languages)}")
        return fold(argument)
    topic = next((t.name for t in cfg.topics if fold(t.name) == fold(argument)), None)
    if topic is None:
        raise ValueError(f"topics are {', '.join(t.name for t in cfg.topics) or '(none)'}")
    return topic


def parse(cfg: Config, lines: list[str]) -> list[Command]:
    """Validated commands, or CommandError naming every bad line."""
    commands: list[Command] = []
    problems: list[str] = []
    for line in lines:
        match = COMMAND_LINE_RE.match(line)
        assert match is not None  # split() only returns matching lines
        word, argument = fold(match.group(1)), (match.group(2) or "").strip()
        name = ALIASES.get(word)
        if name is None:
            problems.append(f"{line}: unknown command")
            continue
        try:
            commands.append(Command(name, _value(cfg, name, argument), line))
        except ValueError as exc:
            problems.append(f"{line}: {exc}")
    if problems:
        raise CommandError(problems)
    return commands
