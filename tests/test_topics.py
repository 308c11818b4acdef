"""New tickets find their topic from keywords in any inflected form, Polish and English."""

from __future__ import annotations

from typing import ClassVar

import pytest

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


class FakeStreamFactory:
    """Stands in for simplemma's StreamDictionaryFactory, counting the builds it is asked for."""

    built: ClassVar[list[str]] = []

    def __init__(self, cache_max_size: int = 0) -> None:
        pass

    def get_dictionary(self, lang: str) -> dict[str, str]:
        FakeStreamFactory.built.append(lang)
        return {"dostawę": "dostawa"}


def test_dictionaries_are_built_once_and_then_read_from_the_cache(tmp_path, monkeypatch) -> None:
    import simplemma.strategies.dictionaries as dictionaries

    from mailbot.pipeline.topics import CachedDictionaries

    monkeypatch.setattr(dictionaries, "StreamDictionaryFactory", FakeStreamFactory)
    FakeStreamFactory.built = []
    first = CachedDictionaries(tmp_path / "cache")
    assert first.get_dictionary("pl")["dostawę"] == "dostawa"
    [cached] = (tmp_path / "cache").iterdir()
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    second = CachedDictionaries(tmp_path / "cache")  # another process
    assert second.get_dictionary("pl")["dostawę"] == "dostawa"
    assert FakeStreamFactory.built == ["pl"]
    cached.chmod(0o666)  # writable by others: not trusted, built again
    assert CachedDictionaries(tmp_path / "cache").get_dictionary("pl")["dostawę"] == "dostawa"
    assert FakeStreamFactory.built == ["pl", "pl"]
    cached.write_bytes(b"not a pickle")  # a torn or foreign file: built again, not fatal
    cached.chmod(0o600)
    assert CachedDictionaries(tmp_path / "cache").get_dictionary("pl")["dostawę"] == "dostawa"
    assert FakeStreamFactory.built == ["pl", "pl", "pl"]
