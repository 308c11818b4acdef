"""Customer subjects (and a few bodies) with the topic a person would route them to.

Real-shaped Polish subjects in the inflected forms customers write ("Brak dostawy", "Pytanie o
dostawę", "Problem z rejestracją konta"), English ones, and negatives that must match no
topic, including words that only look like a keyword ("Kontakt", "Dostawca", "Rodos").
Expected topics are those of the shipped config.toml. Used by tests/test_topics.py and by
`python -m bench.topics`.
"""

from __future__ import annotations

PL_BODY = "Dzień dobry,\n\nproszę o informację.\n\nPozdrawiam\nJan Kowalski"
EN_BODY = "Hello,\n\nplease let me know.\n\nKind regards\nJohn Smith"

# (subject, body, expected topic or None)
CASES: list[tuple[str, str, str | None]] = [
    # logistics
    ("Nie dotarła dostawa komponentów", PL_BODY, "logistics"),
    ("Brak dostawy", PL_BODY, "logistics"),
    ("Pytanie o dostawę", PL_BODY, "logistics"),
    ("Reklamacja przesyłki", PL_BODY, "logistics"),
    ("Opóźnienie w dostawie", PL_BODY, "logistics"),
    ("Problem z dostawą", PL_BODY, "logistics"),
    ("Zagubiona przesyłka", PL_BODY, "logistics"),
    ("Co z moją przesyłką?", PL_BODY, "logistics"),
    ("Terminy dostaw na grudzień", PL_BODY, "logistics"),
    ("Brak materiałów do produkcji", PL_BODY, "logistics"),
    ("Zamówione komponenty nie przyszły", PL_BODY, "logistics"),
    ("Śledzenie przesyłek do Niemiec", PL_BODY, "logistics"),
    ("DOSTAWA MATERIAŁU", PL_BODY, "logistics"),
    ("Zamówienie nr 4521", "Dzień dobry,\n\nkiedy możemy spodziewać się dostawy?", "logistics"),
    # bugs
    ("Błąd przy logowaniu", PL_BODY, "bugs"),
    ("Błędy w raporcie miesięcznym", PL_BODY, "bugs"),
    ("Aplikacja zgłasza błędy", PL_BODY, "bugs"),
    ("Komunikat o błędzie 500", PL_BODY, "bugs"),
    ("Panel nie działa od rana", PL_BODY, "bugs"),
    ("Eksport do CSV nie działał wczoraj", PL_BODY, "bugs"),
    ("Awarie drukarki etykiet", PL_BODY, "bugs"),
    ("Po aktualizacji awarii ciąg dalszy", PL_BODY, "bugs"),
    ("Nie działają powiadomienia", PL_BODY, "bugs"),
    ("Kolejny błąd w module zamówień", PL_BODY, "bugs"),
    ("Raport miesięczny", "Dzień dobry,\n\nraport od wczoraj nie działa poprawnie.", "bugs"),
    # privacy
    ("Usunięcie danych osobowych", PL_BODY, "privacy"),
    ("Prośba o wgląd w dane osobowe", PL_BODY, "privacy"),
    ("Pytanie o RODO", PL_BODY, "privacy"),
    ("Zgoda na przetwarzanie danych osobowych", PL_BODY, "privacy"),
    ("Polityka prywatności – pytanie", PL_BODY, "privacy"),
    ("Ochrona prywatności pracowników", PL_BODY, "privacy"),
    ("Klauzula RODO w umowie", PL_BODY, "privacy"),
    # registration
    ("Problem z rejestracją konta", PL_BODY, "registration"),
    ("Nie mogę założyć konta", PL_BODY, "registration"),
    ("Rejestracji nie da się dokończyć", PL_BODY, "registration"),
    ("Zablokowane konto użytkownika", PL_BODY, "registration"),
    ("Dostęp do kont pracowników", PL_BODY, "registration"),
    ("Pytanie o rejestrację firmy", PL_BODY, "registration"),
    ("Usunięcie konta", PL_BODY, "registration"),
    ("Kontem firmowym nie da się zalogować", PL_BODY, "registration"),
    # English
    ("Delivery delayed", EN_BODY, "logistics"),
    ("Missing deliveries for order 5521", EN_BODY, "logistics"),
    ("Shipments not received", EN_BODY, "logistics"),
    ("App crashes on start", EN_BODY, "bugs"),
    ("Errors in the export", EN_BODY, "bugs"),
    ("The export doesn't work", EN_BODY, "bugs"),
    ("Cannot sign up", EN_BODY, "registration"),
    ("Sign-up form broken", EN_BODY, "registration"),
    ("Signing up fails", EN_BODY, "registration"),
    ("Delete my personal data", EN_BODY, "privacy"),
    ("Accounts locked", EN_BODY, "registration"),
    ("GDPR request", EN_BODY, "privacy"),
    ("Privacy question", EN_BODY, "privacy"),
    # no topic
    ("Pytanie o fakturę", PL_BODY, None),
    ("Prośba o ofertę na 200 sztuk", PL_BODY, None),
    ("Zmiana adresu do faktur", PL_BODY, None),
    ("Spotkanie w przyszłym tygodniu", PL_BODY, None),
    ("Dziękujemy za współpracę", PL_BODY, None),
    ("Kontakt z działem handlowym", PL_BODY, None),
    ("Dostawca nowego oprogramowania", PL_BODY, None),
    ("Rodos – wyjazd integracyjny", PL_BODY, None),
    ("Kontrakt na 2027 rok", PL_BODY, None),
    ("Question about invoice", EN_BODY, None),
    ("Meeting next week", EN_BODY, None),
    ("Errand for the office", EN_BODY, None),
]
