"""Which topic a new ticket belongs to: its keywords found as words in any inflected form.

Keywords and the customer's words are compared by lemma (simplemma's dictionaries, Polish and
English): "dostawa" matches "dostawy", "dostawę", "dostawie"; "crash" matches "crashes". A
keyword of several words ("nie działa", "dane osobowe", "sign up") matches those words in a
row. Words of one to three letters and words with an apostrophe ("nie", "up", "doesn't") are
matched as written, since their lemmas are too general ("doesn't" → "do"). Everything is
compared in lower case without diacritics, and a word also matches as written, so "blad"
matches "błąd". Where the dictionary gives
one word two base forms (dane → dana, danych → dany), the config lists both forms.

The dictionaries are loaded on first use, once per process (`warm()` loads them ahead), with
simplemma's low-memory backend (about 70 MB resident instead of 400 MB for Polish). Building
its index of the Polish dictionary takes seconds of CPU, so the built dictionaries are kept in
a cache directory (systemd's $CACHE_DIRECTORY, else $XDG_CACHE_HOME/mailbot or
~/.cache/mailbot; per simplemma version) and later processes load them in a fraction of a
second. Without a writable cache directory they are built in memory each time.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import stat
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from mailbot.config import Topic
from mailbot.mail.charsets import fold

if TYPE_CHECKING:
    from simplemma import Lemmatizer

# Words: letters, with inner apostrophes ("doesn't"); hyphens and digits separate words.
WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
TEXT_CHARS = 4000  # of the body, after the subject: where a customer names their problem
LANGUAGES = ("pl", "en")  # dictionaries consulted, in this order
_lock = threading.Lock()
log = logging.getLogger(__name__)


def cache_directory() -> Path:
    """Where built dictionaries are kept between processes."""
    systemd = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mailbot"


class CachedDictionaries:
    """A simplemma DictionaryFactory: its low-memory dictionaries, pickled once built.

    A cache file is read only when it belongs to this user and nobody else may write it.
    """

    def __init__(self, directory: Path) -> None:
        from simplemma import __version__

        self.directory = directory
        self.version = __version__
        self.loaded: dict[str, Mapping[str, str]] = {}

    def get_dictionary(self, lang: str) -> Mapping[str, str]:
        if lang not in self.loaded:
            self.loaded[lang] = self._load(lang)
        return self.loaded[lang]

    def _load(self, lang: str) -> Mapping[str, str]:
        from simplemma.strategies.dictionaries import StreamDictionaryFactory

        path = self.directory / f"simplemma-{self.version}-{lang}.pickle"
        try:
            info = path.stat()
            if info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                with path.open("rb") as file:
                    mapping: Mapping[str, str] = pickle.load(file)
                return mapping
        except FileNotFoundError:
            pass
        except Exception as exc:  # unreadable or from another build: build it again
            log.warning("dictionary cache %s unusable (%s); rebuilding", path, exc)
        mapping = StreamDictionaryFactory(cache_max_size=0).get_dictionary(lang)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile(dir=self.directory, delete=False) as out:
                pickle.dump(mapping, out, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(out.name, path)  # whole or not at all, for processes reading it
        except OSError as exc:
            log.info("dictionary cache not written to %s: %s", self.directory, exc)
        return mapping


@lru_cache(maxsize=1)
def _lemmatizer() -> Lemmatizer:
    """simplemma's lemmatizer with the cached low-memory dictionaries (loaded on first lookup)."""
    from simplemma import Lemmatizer  # imported here: only the pipeline needs it
    from simplemma.strategies import DefaultStrategy

    factory = CachedDictionaries(cache_directory())
    return Lemmatizer(lemmatization_strategy=DefaultStrategy(dictionary_factory=factory))


def warm() -> float:
    """Load the dictionaries now rather than at the first message; returns the seconds taken."""
    started = time.perf_counter()
    lemma("dostawę")
    lemma("deliveries")
    return time.perf_counter() - started


@lru_cache(maxsize=100_000)
def lemma(word: str) -> str:
    """The base form of one word, folded ('dostawę' → 'dostawa'); the word itself if unknown."""
    word = word.lower()
    if len(word) <= 3 or "'" in word or "’" in word:
        return fold(word)
    with _lock:  # the dictionaries load once, whichever thread asks first
        base = _lemmatizer().lemmatize(word, lang=LANGUAGES)
    return fold(base)


@lru_cache(maxsize=100_000)
def forms(word: str) -> frozenset[str]:
    """What a word stands for: its lemma and itself, folded ("blad" is "błąd" typed plainly)."""
    return frozenset((lemma(word), fold(word)))


Phrase = tuple[frozenset[str], ...]
Keywords = tuple[tuple[str, tuple[tuple[str, Phrase], ...]], ...]


@lru_cache(maxsize=8)
def _keywords(topics: tuple[Topic, ...]) -> Keywords:
    """Per topic: its name, and each keyword as written and as the forms of its words."""
    return tuple(
        (
            topic.name,
            tuple(
                (k, tuple(forms(w) for w in WORD_RE.findall(k)))
                for k in topic.keywords
                if WORD_RE.search(k)
            ),
        )
        for topic in topics
        if topic.keywords
    )


def _find(words: Sequence[frozenset[str]], first: dict[str, list[int]], phrase: Phrase) -> int:
    """Index of the first place `phrase` stands in `words`, or -1."""
    starts = sorted({i for form in phrase[0] for i in first.get(form, ())})
    for start in starts:
        window = words[start : start + len(phrase)]
        if len(window) == len(phrase) and all(a & b for a, b in zip(window, phrase, strict=True)):
            return start
    return -1


def topic_of(topics: tuple[Topic, ...], subject: str, text: str) -> tuple[str | None, str]:
    """The first configured topic whose keywords the subject or text mention, and why."""
    keywords = _keywords(topics)
    if not keywords:
        return None, "no topic keyword matched"
    found = WORD_RE.findall(f"{subject}\n{text[:TEXT_CHARS]}")
    words = [forms(w) for w in found]
    first: dict[str, list[int]] = {}
    for index, word in enumerate(words):
        for form in word:
            first.setdefault(form, []).append(index)
    for name, phrases in keywords:
        for keyword, phrase in phrases:
            at = _find(words, first, phrase)
            if at >= 0:
                written = " ".join(found[at : at + len(phrase)])
                return name, f"keyword {keyword!r} ({written!r})"
    return None, "no topic keyword matched"
