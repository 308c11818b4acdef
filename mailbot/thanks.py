"""Recognise a customer's short thank-you ("Dziękuję bardzo!", "Thanks, that solved it").

A customer who thanks us after `#close` should not reopen the ticket and page the agents. A
reply counts as a short thank-you only when, after its quoted history and mobile signature are
stripped (`strip_reply`) and a leading greeting and trailing sign-off block are dropped:

* it says one of `[thanks] phrases` ("dziękuję", "thanks", ...);
* every other word is one of `[thanks] words` (intensifiers and "that solved it"-like words),
  a word of the sender's name or an agent's name;
* it has no question mark, at most `[thanks] max_words` words, and the mail no attachment.

Safety over recall: any word outside the lists ("ale", "but", "nadal", "still", "nie", "not")
makes it a real message, which reopens the ticket as before. Matching ignores case and Polish
diacritics. Pure functions; the decide step asks `short_thanks` and keeps the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from mailbot.mail.charsets import fold
from mailbot.mail.quotes import strip_reply

# Defaults of [thanks] phrases and words (config.toml documents them; matching is folded).
THANKS_PHRASES = (
    "dziękuję", "dziękujemy", "dzięki", "podziękowania", "thank you", "thanks", "thank u",
    "thx", "much appreciated", "many thanks",
)  # fmt: skip
THANKS_WORDS = (
    # Polish: intensifiers, what the thanks is for, "it works now", sign-off words.
    "bardzo", "serdecznie", "wielkie", "ślicznie", "pięknie", "uprzejmie", "raz", "jeszcze raz",
    "za", "pomoc", "odpowiedź", "informację", "informacje", "wyjaśnienie", "szybką",
    "sprawną", "błyskawiczną", "szybkie", "sprawne", "szybko", "sprawnie", "rozwiązanie",
    "załatwienie", "wszystko", "już", "teraz", "działa", "jest", "ok", "okej", "super",
    "świetnie", "doskonale", "rewelacja", "to", "rozwiązało problem", "problem rozwiązany",
    "sprawa załatwiona", "można zamknąć", "zgłoszenie", "pozdrawiam", "pozdrawiamy",
    "pozdrowienia", "miłego dnia", "miłego weekendu", "i", "oraz", "pani", "panu", "państwu",
    # English.
    "a", "lot", "so", "much", "very", "for", "the", "your", "you", "all", "help", "quick",
    "fast", "prompt", "reply", "response", "answer", "support", "that", "this", "it", "solved",
    "fixed", "sorted", "resolved", "works", "worked", "working", "now", "good", "great",
    "perfect", "awesome", "excellent", "everything", "is", "has", "been", "nice", "day",
    "weekend", "regards", "best", "kind", "cheers", "ok", "okay", "and", "appreciated",
    "really", "guys", "team", "again", "problem solved", "you can close the ticket",
)  # fmt: skip

# A greeting at the very start, up to the first comma or exclamation mark (names included).
_GREETING = re.compile(
    r"^\s*(?:dzien dobry|dobry wieczor|witam(?: serdecznie)?|czesc|hej|szanown\w+ \w+"
    r"|hello|hi|hey|dear|good (?:morning|afternoon|evening))\b[^,!.\n]{0,40}(?:[,!.]|\n|$)",
)
# A line that opens the sign-off block: it and the (short) lines below it are dropped.
# Matched on folded text (lower case, no diacritics): "Łączę pozdrowienia" → "lacze ...".
_SIGN_OFF = re.compile(
    r"^(?:z powazaniem|z wyrazami szacunku|(?:serdecznie |serdeczne )?pozdr\w*|serdecznosci"
    r"|lacze pozdrowienia|(?:best|kind|warm) regards|regards|best wishes|best|cheers|br"
    r"|sincerely|all the best|milego dnia)\b[\s,.!]*(?:\w+\W*){0,3}$",
)
_MAX_SIGNATURE_LINES = 6  # name, title, company, address, phone, web site
_MAX_SIGNATURE_WORDS = 8
_POSTSCRIPT = re.compile(r"^p\.?\s?s\b")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class ThanksRules:
    """[thanks] as the recogniser needs it; built once per configuration."""

    phrases: tuple[str, ...]
    words: tuple[str, ...]
    max_words: int


@lru_cache(maxsize=8)
def _patterns(rules: ThanksRules) -> tuple[re.Pattern[str] | None, re.Pattern[str], frozenset]:
    """(thanks phrases, multi-word allowed phrases, allowed single words), all folded."""
    phrases = sorted({" ".join(fold(p).split()) for p in rules.phrases if p.strip()}, key=len)
    words = {" ".join(fold(w).split()) for w in rules.words if w.strip()}
    multi = sorted((w for w in words if " " in w), key=len)
    single = frozenset(w for w in words if " " not in w)

    def alternation(items: list[str]) -> str:  # longest first: "thank you" before "thank"
        return "|".join(r"\s+".join(map(re.escape, item.split())) for item in reversed(items))

    thanks = re.compile(rf"(?<!\w)(?:{alternation(phrases)})(?!\w)") if phrases else None
    allowed = re.compile(rf"(?<!\w)(?:{alternation(multi)})(?!\w)" if multi else r"(?!x)x")
    return thanks, allowed, single


def _drop_sign_off(lines: list[str]) -> list[str]:
    """The lines above a sign-off block ("Pozdrawiam / Jan Kowalski / ACME Sp. z o.o.")."""
    for index, line in enumerate(lines):
        if index == 0 or not _SIGN_OFF.match(line):
            continue
        below = [other for other in lines[index + 1 :] if other]
        if len(below) > _MAX_SIGNATURE_LINES:
            return lines  # too long for a signature: it may say more
        if any(
            len(other.split()) > _MAX_SIGNATURE_WORDS or _POSTSCRIPT.match(other) for other in below
        ):
            return lines
        return lines[:index]
    return lines


def short_thanks(
    text: str, rules: ThanksRules, *, names: Iterable[str] = (), attachments: int = 0
) -> str | None:
    """Why this reply is only a short thank-you ('' never), or None when it may say more.

    `text`: the reply's whole plain text (quotes are stripped here). `names`: the sender's
    and the agents' names, whose words may appear ("Thanks Anna! Jan").
    """
    thanks, allowed, single = _patterns(rules)
    if thanks is None or attachments:
        return None
    new = strip_reply(text)
    if not new or "?" in new or "¿" in new:
        return None
    folded = _GREETING.sub("", fold(new), count=1)
    lines = _drop_sign_off([" ".join(line.split()) for line in folded.splitlines()])
    body = "\n".join(lines)
    found = thanks.search(body)
    if found is None:
        return None
    words = _WORD.findall(body)
    if len(words) > rules.max_words:
        return None
    name_words = {word for name in names for word in _WORD.findall(fold(name))}
    rest = _WORD.findall(allowed.sub(" ", thanks.sub(" ", body)))
    unknown = [word for word in rest if word not in single and word not in name_words]
    if unknown:
        return None
    return f"short thank-you ({' '.join(_WORD.findall(found.group(0)))!r}, {len(words)} words)"
