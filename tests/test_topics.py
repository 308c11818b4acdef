"""New tickets find their topic from keywords in any inflected form, Polish and English."""

from __future__ import annotations

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
