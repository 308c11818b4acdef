"""Which topic a new ticket belongs to: its keywords found as words in any inflected form.

Keywords and the customer's words are compared by lemma (simplemma's dictionaries, Polish and
English): "dostawa" matches "dostawy", "dostawę", "dostawie"; "crash" matches "crashes". A
keyword of several words ("nie działa", "dane osobowe", "sign up") matches those words in a
row. Words of one to three letters and words with an apostrophe ("nie", "up", "doesn't") are
matched as written, since their lemmas are too general ("doesn't" → "do"). Everything is
compared in lower case without diacritics, and a word also matches as written, so "blad"
matches "błąd". Where the dictionary gives one word two base forms (dane → dana, danych →
dany), the config lists both forms.

The lookup is inverted: once per keyword list, one pass over the Polish and English
dictionaries (form → lemma) collects every form whose lemma is a keyword word's lemma, folded
(`keyword_forms`); a message's word then matches when its folded self is in such a set. No
lemmatiser and no dictionary stay in memory, only a few hundred short strings. The pass runs
in a short-lived process (`python -m mailbot.pipeline.topics`: seconds of CPU, about 90 MB at
its peak, none of it in the daemon) and its result is kept as a small JSON file in a cache
directory (systemd's $CACHE_DIRECTORY, else $XDG_CACHE_HOME/mailbot or ~/.cache/mailbot),
named by the simplemma version and a hash of the keyword words, read only if it is ours and
nobody else may write it; later processes read it in milliseconds. Without a writable cache
directory the pass runs once per process; if it fails, keywords match only as written. A
customer's word the dictionaries do not know matches only as written too (the lemmatiser
guessed lemmas for some such words by rules).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

from mailbot.config import Topic
from mailbot.mail.charsets import fold

# Words: letters, with inner apostrophes ("doesn't"); hyphens and digits separate words.
WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
TEXT_CHARS = 4000  # of the body, after the subject: where a customer names their problem
LANGUAGES = ("pl", "en")  # dictionaries consulted, in this order
_lock = threading.Lock()
log = logging.getLogger(__name__)

Forms = dict[str, frozenset[str]]  # keyword word (lower case) → the folded words it matches
Lemmas = dict[bytes, str]  # dictionary form → its folded lemma


def cache_directory() -> Path:
    """Where computed keyword forms are kept between processes."""
    systemd = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mailbot"


def as_written(word: str) -> bool:
    """Words matched only as written: three letters or fewer, or with an apostrophe."""
    return len(word) <= 3 or "'" in word or "’" in word


def _fast_records(lang: str) -> Iterator[tuple[bytes, bytes]]:
    """simplemma 2's own reader of its front-coded dictionary files (not public API)."""
    from simplemma.strategies.dictionaries import frontcode
    from simplemma.strategies.dictionaries.dictionary_factory import _read_decompressed

    data = _read_decompressed(lang)
    reverse, _count, start = frontcode._read_header(data)
    records = frontcode._iter_records(data, start)
    return (((f[::-1], m[::-1]) if reverse else (f, m)) for _offset, f, m in records)


def _records(lang: str) -> Iterator[tuple[bytes, bytes]]:
    """(form, lemma) pairs of simplemma's dictionary for `lang`, UTF-8 encoded.

    simplemma 2's record reader streams the Polish dictionary in ~4 s, while iterating the
    public mapping lazily takes over a minute. That reader is not public API: if a release
    moves it, the public full dictionary is read instead (slower, larger; in the subprocess).
    """
    try:
        return _fast_records(lang)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        log.warning("simplemma's record reader unavailable (%s); reading its full dictionary", exc)
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    mapping = DefaultDictionaryFactory().get_dictionary(lang)
    return ((str(form).encode(), str(lemma).encode()) for form, lemma in mapping.items())


def _scan(
    lang: str, lookup: set[bytes], exact: set[str], prefixes: set[str]
) -> tuple[dict[bytes, bytes], Lemmas]:
    """One pass over simplemma's dictionary for `lang`, read as a stream (~19 MB for Polish):
    the lemmas of the `lookup` spellings it has, and every form whose lemma, folded, starts
    with one of `prefixes` (three letters or more) or is in `exact`, with that folded lemma.
    """
    found: dict[bytes, bytes] = {}
    forms: Lemmas = {}
    starts = {p[:3].encode() for p in exact | prefixes}  # a quick no for ASCII lemmas
    beginnings = tuple(prefixes)
    verdict: dict[bytes, str | None] = {}  # recent lemmas: folded if wanted
    for form, lemma in _records(lang):
        if form in lookup:
            found[form] = lemma
        head = lemma[:3]
        if head.isascii() and head.lower() not in starts:
            continue
        if lemma in verdict:
            folded = verdict[lemma]
        else:
            if len(verdict) > 4096:
                verdict.clear()
            folded = fold(lemma.decode())
            if folded not in exact and not folded.startswith(beginnings):
                folded = None
            verdict[lemma] = folded
        if folded is not None:
            forms[form] = folded
    return found, forms


def _spellings(words: Iterable[str]) -> set[bytes]:
    """How simplemma looks a word up: as written, then in the other case."""
    return {s.encode() for w in words for s in (w, w.lower(), w.capitalize())}


def _collect(
    lookup: set[bytes], exact: set[str], prefixes: set[str]
) -> tuple[dict[str, dict[bytes, bytes]], Lemmas]:
    """Both dictionaries scanned once: the lemmas of `lookup` per language, and the forms
    of lemmas in `exact` or starting with `prefixes` (a form the Polish dictionary knows has
    its Polish lemma only, whatever the English one says).
    """
    found_en, english = _scan("en", lookup, exact, prefixes)
    more = lookup | _spellings(f.decode() for f in english)
    found_pl, polish = _scan("pl", more, exact, prefixes)
    forms = dict(polish)
    for form, lemma in english.items():
        if not _spellings([form.decode()]) & found_pl.keys():
            forms.setdefault(form, lemma)
    return {"en": found_en, "pl": found_pl}, forms


def compute_forms(words: Iterable[str]) -> Forms:
    """For each keyword word, the folded words it matches: itself, and every dictionary form
    whose lemma (Polish first, then English, as the lemmatiser looks it up) is its lemma.

    One pass over each dictionary finds the words' lemmas and keeps the forms of the lemmas
    that start as the words do, less their last three letters ("danych" → "dany",
    "rejestracji" → "rejestracja"); a lemma that does not ("błędy" → "błąd") takes one more.
    """
    words = sorted({w.lower() for w in words})
    looked_up = [w for w in words if not as_written(w)]  # the others are their own lemma
    exact = {fold(w) for w in words if as_written(w)}
    prefixes = {fold(w)[: max(3, len(w) - 3)] for w in looked_up}
    found, forms = _collect(_spellings(looked_up), exact, prefixes)
    lemma = {w: fold(w) for w in words}
    for w in looked_up:
        for lang in LANGUAGES:
            known = found[lang].get(w.encode()) or found[lang].get(w.capitalize().encode())
            if known is not None:
                lemma[w] = fold(known.decode())
                break
    targets = {fold(w) for w in words} | set(lemma.values())
    missed = {t for t in targets if t not in exact and not t.startswith(tuple(prefixes))}
    if missed:
        forms.update(_collect(set(), missed, set())[1])
    by_lemma: dict[str, set[str]] = {}
    for form, folded in forms.items():
        if folded in targets:
            by_lemma.setdefault(folded, set()).add(form.decode())
    result: Forms = {}
    for w in words:
        matches = {fold(w), lemma[w]}
        for target in {fold(w), lemma[w]}:
            for spelled in by_lemma.get(target, ()):
                # A customer's word matched as written has itself as its lemma: covered.
                if not as_written(spelled.lower()) and WORD_RE.fullmatch(spelled):
                    matches.add(fold(spelled))
        result[w] = frozenset(matches)
    return result


def keyword_words(topics: tuple[Topic, ...]) -> tuple[str, ...]:
    """Every word of every topic's keywords, lower case, sorted, once."""
    return tuple(
        sorted({w.lower() for t in topics for k in t.keywords for w in WORD_RE.findall(k)})
    )


def cache_path(words: tuple[str, ...]) -> Path:
    """The cache file of these keyword words' forms: by simplemma version and the words."""
    release = version("simplemma")
    digest = hashlib.sha256(json.dumps([release, words]).encode()).hexdigest()[:16]
    return cache_directory() / f"topic-forms-{release}-{digest}.json"


def _read_cache(path: Path, words: tuple[str, ...]) -> Forms | None:
    """The forms kept in `path`, if it is ours, nobody else may write it, and it is whole."""
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.warning("topic forms cache %s not trusted (owner or mode); rebuilding", path)
            return None
        kept = json.loads(path.read_text(encoding="utf-8"))
        forms = {w: frozenset(kept["forms"][w]) for w in words}
        if not all(isinstance(f, str) for fs in forms.values() for f in fs):
            raise ValueError("not a list of words")
        return forms
    except FileNotFoundError:
        return None
    except Exception as exc:  # torn, foreign or from another build: built again
        log.warning("topic forms cache %s unusable (%s); rebuilding", path, exc)
        return None


def _write_cache(path: Path, forms: Forms) -> None:
    """Keep `forms` in `path`, whole or not at all, for processes reading it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        kept = {
            "simplemma": version("simplemma"),
            "forms": {w: sorted(f) for w, f in forms.items()},
        }
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, delete=False, encoding="utf-8"
        ) as out:
            json.dump(kept, out, ensure_ascii=False)
        os.replace(out.name, path)
    except OSError as exc:
        log.info("topic forms cache not written to %s: %s", path.parent, exc)


def _compute_elsewhere(words: tuple[str, ...]) -> Forms | None:
    """compute_forms in a short-lived process (the dictionaries never enter this one), or
    None if it failed.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mailbot.pipeline.topics"],
            input=json.dumps(words),
            capture_output=True,
            text=True,
            timeout=120,  # the pass takes seconds; the first new ticket waits for it
        )
        if done.returncode:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            raise RuntimeError(lines[-1])
        computed = json.loads(done.stdout)
        return {w: frozenset(computed[w]) for w in words}
    except Exception as exc:
        log.error("keyword forms not computed (%s); keywords match only as written", exc)
        return None


@lru_cache(maxsize=8)
def keyword_forms(words: tuple[str, ...]) -> Forms:
    """The forms of these keyword words: from the cache file, else computed and kept there
    (if that fails, each word as written, until the next process tries again).
    """
    if not words:
        return {}
    path = cache_path(words)
    with _lock:  # computed once, whichever thread asks first
        forms = _read_cache(path, words)
        if forms is None:
            forms = _compute_elsewhere(words)
            if forms is None:
                return {w: frozenset({fold(w)}) for w in words}
            _write_cache(path, forms)
    return forms


def warm(topics: tuple[Topic, ...]) -> float:
    """Have the keyword forms ready now rather than at the first message; returns seconds."""
    started = time.perf_counter()
    _keywords(topics)
    return time.perf_counter() - started


Phrase = tuple[frozenset[str], ...]  # per word of a keyword, the folded words it matches


@dataclass(frozen=True)
class Keyword:
    """One keyword as configured, its topic and place in the config, and its forms."""

    order: tuple[int, int]  # (topic, keyword) in config order: the first one found wins
    topic: str
    written: str
    phrase: Phrase


@lru_cache(maxsize=8)
def _keywords(topics: tuple[Topic, ...]) -> dict[str, list[Keyword]]:
    """Each keyword by the folded words its first word matches."""
    forms = keyword_forms(keyword_words(topics))
    by_first: dict[str, list[Keyword]] = {}
    for t, topic in enumerate(topics):
        for k, written in enumerate(topic.keywords):
            phrase = tuple(forms[w.lower()] for w in WORD_RE.findall(written))
            if phrase:
                keyword = Keyword((t, k), topic.name, written, phrase)
                for form in phrase[0]:
                    by_first.setdefault(form, []).append(keyword)
    return by_first


@lru_cache(maxsize=4096)
def _fold_word(word: str) -> str:
    """fold() for a customer's word: few distinct ones, seen again and again."""
    return fold(word)


def topic_of(topics: tuple[Topic, ...], subject: str, text: str) -> tuple[str | None, str]:
    """The first configured topic whose keywords the subject or text mention, and why."""
    by_first = _keywords(topics)
    found = WORD_RE.findall(f"{subject}\n{text[:TEXT_CHARS]}") if by_first else []
    words = [w.lower() if w.isascii() else _fold_word(w) for w in found]
    candidates = sorted(
        (keyword.order, start, keyword)
        for start, word in enumerate(words)
        for keyword in by_first.get(word, ())
    )
    for _order, start, keyword in candidates:
        window = words[start : start + len(keyword.phrase)]
        if len(window) == len(keyword.phrase) and all(
            map(frozenset.__contains__, keyword.phrase, window)
        ):
            written = " ".join(found[start : start + len(window)])
            return keyword.topic, f"keyword {keyword.written!r} ({written!r})"
    return None, "no topic keyword matched"


if __name__ == "__main__":  # compute_forms for _compute_elsewhere: words in, forms out (JSON)
    computed = compute_forms(json.load(sys.stdin))
    json.dump({w: sorted(f) for w, f in computed.items()}, sys.stdout, ensure_ascii=False)
