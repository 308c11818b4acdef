"""New tickets find their topic from keywords in any inflected form, Polish and English."""

from __future__ import annotations

import pytest

from mailbot.pipeline import topics
from mailbot.pipeline.topics import topic_of
from tests.helpers import make_mail
from tests.topic_corpus import CASES


@pytest.mark.parametrize(("subject", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_subject_routes_to_its_topic(bot, subject: str, body: str, expected: str | None) -> None:
    topic, reason = topic_of(bot.cfg.topics, subject, body)
    assert topic == expected, reason


def test_inflected_subject_opens_a_ticket_for_the_topics_agents(bot) -> None:
    bot.deliver(make_mail(subject="Pytanie o dostawę", body="Kiedy wyślecie resztę zamówienia?"))
    [ticket] = bot.tickets()
    assert ticket["topic"] == "logistics"
    agents = {m["To"] for m in bot.outbox() if m["To"].endswith("@4dustry.com")}
    assert agents == {"anna@4dustry.com"}  # logistics' agent only, not every agent
    [event] = [e for e in bot.ctx.store.rows("events") if "dostawę" in (e["detail"] or "")]
    assert "keyword 'dostawa' ('dostawę')" in event["detail"]


def test_keywords_of_several_words_match_only_in_a_row(bot) -> None:
    topics = bot.cfg.topics
    assert topic_of(topics, "Eksport nie działał", "")[0] == "bugs"
    assert topic_of(topics, "Nie wiem, czy eksport działa", "")[0] is None
    assert topic_of(topics, "Problem", "We tried to sign up twice.")[0] == "registration"
    assert topic_of(topics, "Sign the contract", "Set it up, please.")[0] is None


def test_words_without_polish_letters_match_too(bot) -> None:
    assert topic_of(bot.cfg.topics, "Blad w raporcie", "")[0] == "bugs"
    assert topic_of(bot.cfg.topics, "Prywatnosc danych", "")[0] == "privacy"


def test_keyword_forms_are_computed_once_and_then_read_from_the_cache(
    tmp_path, monkeypatch
) -> None:
    from mailbot.pipeline import topics

    computed: list[tuple[str, ...]] = []

    def compute(words: tuple[str, ...]) -> dict[str, frozenset[str]]:
        computed.append(words)
        return {w: frozenset({w, w + "y"}) for w in words}

    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "cache"))
    monkeypatch.setattr(topics, "_compute_elsewhere", compute)

    def forms(*words: str) -> dict[str, frozenset[str]]:
        topics.keyword_forms.cache_clear()  # as in a new process
        return topics.keyword_forms(words)

    assert forms("dostawa")["dostawa"] == {"dostawa", "dostaway"}
    [cached] = (tmp_path / "cache").iterdir()
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    assert cached.suffix == ".json" and cached.stat().st_size < 1000
    assert forms("dostawa")["dostawa"] == {"dostawa", "dostaway"}
    assert computed == [("dostawa",)]
    assert forms("dostawa", "konto")["konto"] == {"konto", "kontoy"}  # other keywords, other file
    assert computed == [("dostawa",), ("dostawa", "konto")]
    cached.chmod(0o666)  # writable by others: not trusted, computed again
    assert forms("dostawa")["dostawa"] == {"dostawa", "dostaway"}
    assert len(computed) == 3
    cached.write_text('{"forms": {"dost')  # torn or foreign: computed again, not fatal
    cached.chmod(0o600)
    assert forms("dostawa")["dostawa"] == {"dostawa", "dostaway"}
    assert len(computed) == 4
    assert forms("dostawa") and len(computed) == 4  # and kept again


def test_without_the_forms_keywords_still_match_as_written(tmp_path, monkeypatch, caplog) -> None:
    from mailbot.config import Topic
    from mailbot.pipeline import topics

    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(topics.sys, "executable", str(tmp_path / "no-python"))
    topics.keyword_forms.cache_clear()
    topics._keywords.cache_clear()
    mine = (Topic("logistics", ("dostawa",), ()),)
    try:
        assert topic_of(mine, "Dostawa 12/2026", "")[0] == "logistics"
        assert topic_of(mine, "Brak dostawy", "")[0] is None  # no inflected forms this time
    finally:
        topics.keyword_forms.cache_clear()
        topics._keywords.cache_clear()
    assert "keywords match only as written" in caplog.text
    assert list(tmp_path.iterdir()) == []  # nothing cached: the next process tries again


ROUTE_ONE = """
import json, sys
from mailbot.config import Topic
from mailbot.pipeline import topics
from mailbot.pipeline.topics import topic_of
topics = (Topic("logistics", ("przesyłka", "shipment"), ()), Topic("bugs", ("błędy",), ()))
routed = [topic_of(topics, s, "")[0] for s in ("Zagubione przesyłki", "Błąd w raporcie")]
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
dictionaries = [m for m in sys.modules if m.startswith("simplemma.strategies")]
print(json.dumps({"routed": routed, "dictionaries": dictionaries, "rss_kb": rss}))
"""


@pytest.mark.slow
def test_the_dictionaries_never_enter_the_routing_process(tmp_path) -> None:
    """Computed in a short-lived process the first time, read from the cache after; a keyword
    in any form ("błędy") matches the others ("Błąd").
    """
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "CACHE_DIRECTORY": str(tmp_path)}
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", ROUTE_ONE], env=env, capture_output=True, check=True
        )
        runs.append(json.loads(done.stdout))
    for run in runs:
        assert run["routed"] == ["logistics", "bugs"]
        assert run["dictionaries"] == []  # neither the scan nor a lemmatiser was imported
    [cached] = tmp_path.iterdir()
    forms = json.loads(cached.read_text(encoding="utf-8"))["forms"]
    assert {"przesylki", "przesylek", "przesylce"} <= set(forms["przesyłka"])
    assert {"shipments", "shipment"} <= set(forms["shipment"])
    # "błędy" is a form of "błąd", a lemma that starts otherwise: found all the same.
    assert {"bledy", "bledu", "blad", "bledem"} <= set(forms["błędy"])


def test_forms_come_out_the_same_through_simplemmas_public_dictionary(monkeypatch) -> None:
    """If a simplemma release moves the fast record reader, the public mapping gives the same."""
    fast = dict(topics._records("en"))

    def moved(lang: str):
        raise AttributeError("module 'frontcode' has no attribute '_iter_records'")

    monkeypatch.setattr(topics, "_fast_records", moved)
    assert dict(topics._records("en")) == fast
    assert fast[b"deliveries"] == b"delivery"
