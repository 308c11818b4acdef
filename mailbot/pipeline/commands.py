"""Agent commands: `#word [argument]` lines in an agent's reply, English or Polish.

`split` separates the command lines from the text; `parse` turns them into validated
`Command`s or raises `CommandError` listing every problem, so that nothing is half-applied.
Deciding what they change is the decide step's job (`agents`); the text of the problems and of
the command list is in the agent_error template, in the agent's language.

Which lines are commands (a line that is a command never reaches a customer):
- every `#word [argument]` line before the text (the leading block): an unknown word is an error;
- further down, in the agent's own text or in their "-- " signature block: a line that is only
  `#word [argument]` where the word is a command in either language, or one letter away from one
  (`#zamkij`, `#clsoe`), or a command cut short or run on (`#zamk`, `#notatki`: at least three
  letters); the latter are errors.
Everything else is text: `#123`, `#1 priorytet`, `# Nagłówek`, `#StayHome`, a hashtag in a
sentence, and any line of the quoted history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.config import Agent, Config
from mailbot.mail.charsets import fold

# `#word [argument]`; a stray stop or colon after the word ("#zamknij.", "#notatka:") is allowed.
COMMAND_LINE_RE = re.compile(r"^\s*#([^\W\d_][\w-]*)[.!:;,]?(?:[ \t]+(.*?))?\s*$")

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

# What a problem says in the events log (English); agents read it in agent_error, localised.
PROBLEM_TEXTS = {
    "unknown": "unknown command",  # choices: the command it may be a typo of
    "needs-argument": "needs an argument",
    "no-argument": "takes no argument",
    "agent": "no agent {argument!r}",
    "priority": "use urgent/normal (pilny/normalny)",
    "lang": "languages are {choices}",
    "topic": "topics are {choices}",
    "empty": "the reply had no text",
}


@dataclass(frozen=True)
class Command:
    name: str  # canonical English name
    value: str = ""  # normalised argument: agent email, priority, language, topic name
    line: str = ""  # as the agent wrote it


@dataclass(frozen=True)
class Problem:
    """What is wrong with one command line; `code` is a key of PROBLEM_TEXTS."""

    line: str
    code: str
    argument: str = ""
    choices: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = PROBLEM_TEXTS[self.code].format(
            argument=self.argument, choices=", ".join(self.choices) or "(none)"
        )
        return f"{self.line}: {text}" if self.line else text


class CommandError(Exception):
    """One or more command lines are wrong; `problems` says which and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def _near(word: str, command: str) -> bool:
    """A typo of a command word: one edit or swap away, or cut short or run on (3+ letters)."""
    if len(word) >= 3 and command.startswith(word):
        return True
    if word.startswith(command) and len(word) <= len(command) + 3:
        return True
    if abs(len(word) - len(command)) > 1:
        return False
    if len(word) == len(command):
        diff = [i for i, (a, b) in enumerate(zip(word, command, strict=True)) if a != b]
        return len(diff) <= 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and word[diff[0]] == command[diff[1]]
            and word[diff[1]] == command[diff[0]]
        )
    short, long = sorted((word, command), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def is_command_word(word: str) -> bool:
    """Whether a `#word` alone on a line means a command (or a misspelt one)."""
    word = fold(word)
    return word in ALIASES or any(_near(word, alias) for alias in ALIASES)


def _is_command_line(line: str) -> bool:
    match = COMMAND_LINE_RE.match(line)
    return match is not None and is_command_word(match.group(1))


def split(text: str, signature: str = "") -> tuple[list[str], str]:
    """(command lines, the rest): the leading `#word` lines and every command line below them.

    `text` is the agent's own text (quotes stripped); command lines in `signature` (the "-- "
    block the stripping cut off, never sent) count too.
    """
    lines = text.splitlines()
    commands: list[str] = []
    index = 0
    while index < len(lines):  # the leading block: every #word line
        line = lines[index]
        if line.strip() and not COMMAND_LINE_RE.match(line):
            break
        if line.strip():
            commands.append(line.strip())
        index += 1
    kept: list[str] = []
    for line in lines[index:]:
        if _is_command_line(line):
            commands.append(line.strip())
        elif line.strip() or (kept and kept[-1].strip()):  # no run of blanks where it stood
            kept.append(line)
    commands.extend(line.strip() for line in signature.splitlines() if _is_command_line(line))
    return commands, "\n".join(kept).strip()


def find_agent(cfg: Config, who: str) -> Agent | None:
    """An agent by email, full name or first name, ignoring case and Polish letters."""
    wanted = fold(who.strip().strip("<>"))
    for agent in cfg.agents:
        names = {fold(agent.email), fold(agent.name), fold(agent.name.split()[0])}
        if wanted in names or wanted == fold(agent.email.split("@")[0]):
            return agent
    return None


class _Bad(Exception):
    def __init__(self, code: str, choices: tuple[str, ...] = ()) -> None:
        super().__init__(code)
        self.code, self.choices = code, choices


def _value(cfg: Config, name: str, argument: str, language: str) -> str:
    """The validated argument of one command; _Bad says what is wrong."""
    if name in TAKES_ARGUMENT and not argument:
        raise _Bad("needs-argument")
    if name not in TAKES_ARGUMENT:
        if argument:
            raise _Bad("no-argument")
        return ""
    if name == "assign":
        agent = find_agent(cfg, argument)
        if agent is None:
            raise _Bad("agent")
        return agent.email
    if name == "priority":
        if fold(argument) not in PRIORITIES:
            raise _Bad("priority")
        return PRIORITIES[fold(argument)]
    if name == "lang":
        if fold(argument) not in cfg.mailbot.languages:
            raise _Bad("lang", cfg.mailbot.languages)
        return fold(argument)
    topic = cfg.find_topic(argument)
    if topic is None:
        raise _Bad("topic", tuple(t.name_in(language) for t in cfg.topics))
    return topic.name


def parse(cfg: Config, lines: list[str], language: str | None = None) -> list[Command]:
    """Validated commands, or CommandError naming every bad line (topics named in `language`)."""
    language = language or cfg.mailbot.default_language
    commands: list[Command] = []
    problems: list[Problem] = []
    for line in lines:
        match = COMMAND_LINE_RE.match(line)
        assert match is not None  # split() only returns matching lines
        word, argument = fold(match.group(1)), (match.group(2) or "").strip()
        name = ALIASES.get(word)
        if name is None:
            nearest = tuple(alias for alias in ALIASES if _near(word, alias))[:1]
            problems.append(Problem(line, "unknown", choices=nearest))
            continue
        try:
            commands.append(Command(name, _value(cfg, name, argument, language), line))
        except _Bad as exc:
            problems.append(Problem(line, exc.code, argument, exc.choices))
    if problems:
        raise CommandError(problems)
    return commands
