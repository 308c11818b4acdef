"""Strip quoted history, reply headers and signatures from a plain-text email reply.

`strip_reply(text)` keeps only what the author of a reply wrote. It is built for replies
from Gmail, Outlook, Thunderbird, Apple Mail and phones, in Polish and English, with the
common headers of German, French, Dutch, Scandinavian, Italian, Spanish, Portuguese,
Finnish, Russian and Ukrainian clients as a bonus. HTML bodies are converted first with
`mailbot.mail.html.html_to_text`, which renders <blockquote> as `>` lines.

How a body is read, top to bottom, ignoring `>` lines:

* A **hard cut** drops the line and everything below it: an Outlook header block
  ("From:/Sent:/To:/Subject:", "Od:/Wysłano:/Do:/Temat:", "Von:/Gesendet:", ...), an
  "-----Original Message-----" / "-----Wiadomość oryginalna-----" / forward marker, a line
  of underscores, the "-- " signature delimiter, a mobile signature ("Sent from my iPhone",
  "Wysłane z iPhone'a", "Get Outlook for iOS", ...), or a reply header ("On ... wrote:",
  "W dniu ... napisał(a):", "Am ... schrieb ...:") that is *not* followed by `>` lines.
  Outlook and phones do not mark the quoted text, so everything below such a line is history.
* A reply header that *is* followed by `>` lines only introduces that quote: the header and
  the `>` block are removed, and text after the block is kept (bottom-posting and inline
  answers).

A reply header carrying a date or an address ("strong") may cut; a bare "Jan Kowalski
pisze:" only counts when a `>` block follows it, so that "My colleague wrote:" in a
customer's own text does not swallow what comes after it.

Policy for inline answers: every `>` line is removed, together with the attribution line
above a `>` block and the blank lines after it; the author's own lines are kept in order.
An unquoted line squeezed between two `>` lines that starts in lower case (or follows a
long quoted line) is taken to be a quoted line that a client wrapped, and is removed too.
So nothing of the quoted history reaches the output, at the price of answers that read
without the questions they answer; callers that need the context should keep the full body.

Safety over completeness: when in doubt the text is cut, never kept. Sign-offs such as
"Pozdrawiam, Jan" stay (they are part of what the author wrote to the customer); only
delimited ("-- ") and mobile signatures go, not an undelimited company signature. The
result is "" when the author wrote nothing new, e.g. a bare forward or a reply whose quote
header is its first line; a caller that opens a ticket from such a message should fall
back to the full body. Link targets that `html_to_text` lists at the end ("[1]: https://")
are kept only for links in the kept text.
"""

from __future__ import annotations

import re

# Characters that clients sprinkle into text but that carry nothing: zero-width spaces and
# joiners, direction marks (Windows Mail puts them around dates), BOMs, soft hyphens, and
# the "ᐧ" that Gmail add-ons append as a tracking marker.
_INVISIBLE = re.compile("[\u00ad\u1427\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# Non-breaking spaces (Gmail writes "12:53\u202fAM") must match like plain spaces.
_SPACES = re.compile("[\u00a0\u2007\u202f]")

_QUOTED = re.compile(r"^\s*>")

# html_to_text writes links as "[text][1]" with the targets ("   [1]: https://...") at the
# end of the text, after any quoted history.
_FOOTNOTE = re.compile(r"^\s{0,4}\[(\d+)\]:\s+\S")
_CITATION = re.compile(r"\]\[(\d+)\]")

# "-- " is the standard signature delimiter; a line of underscores is what Outlook puts
# above the quoted message and what mailing lists put above their footer.
_SIG_DELIMITER = re.compile(r"^(?:--|_{2,})$")

# Lines made only of drawing characters: dropped when they sit just above a cut.
_SEPARATOR = re.compile(r"^[-_=*~#+\s]+$")

# Separators that introduce an original or forwarded message, with or without dashes.
_MARKER = re.compile(
    r"""^[\s*_>-]*(?:
        original\s+message|original-nachricht|ursprüngliche\s+nachricht
        |wiadomość\s+oryginalna|oryginalna\s+wiadomość|oryginalna\s+wiadomosc
        |message\s+d'origine|message\s+original|mensaje\s+original|messaggio\s+originale
        |mensagem\s+original|oorspronkelijk\s+bericht|oprindelig\s+(?:meddelelse|besked)
        |opprinnelig\s+melding|ursprungligt\s+meddelande|alkuperäinen\s+viesti
        |исходное\s+сообщение|forwarded\s+message|begin\s+forwarded\s+message
        |wiadomość\s+przekazana(?:\s+dalej)?|przekazana\s+wiadomość
        |początek\s+przekazywanej\s+wiadomości|weitergeleitete\s+nachricht
        |anfang\s+der\s+weitergeleiteten\s+nachricht|message\s+transféré
        |début\s+du\s+message\s+réexpédié|mensaje\s+reenviado
        |inicio\s+del\s+mensaje\s+reenviado|messaggio\s+inoltrato
        |inizio\s+messaggio\s+inoltrato|doorgestuurd\s+bericht
        |videresendt\s+(?:meddelelse|besked)|vidarebefordrat\s+meddelande
        |пересылаемое\s+сообщение|mensagem\s+encaminhada
    )\s*:?[\s*_-]*$""",
    re.IGNORECASE | re.VERBOSE,
)

# Mobile and webmail signatures. English "Sent from my ..." is nearly always one; other
# openings ("Sent from X", "Wysłane z X") also start ordinary sentences ("Wysłane z
# magazynu w poniedziałek."), so those need a device or app name to count.
_SENT_FROM_MY = re.compile(r"^sent\s+from\s+my\s", re.IGNORECASE)
_SENT_FROM = re.compile(
    r"""^(?:
        (?:sent|envoyé|enviado|inviato|gesendet|verzonden|sendt|skickat|wysłane|wysłano
          |wyslane|wyslano|отправлено|надіслано|lähetetty)
        \s+(?:from|via|with|using|on|de|depuis|à\s+partir\s+de|desde|do|da|dal|von|vom|mit
          |aus|vanaf|met|van|fra|från|med|z|ze|przy\s+użyciu|za\s+pomocą|с|з)\s
        |von\s+meinem\s.{1,40}\sgesendet
        |(?:get|pobierz|obtenez|scarica|descarga|baixe|hent|skaffa)
          \s+(?:(?:the|aplikację|aplikacje|l'application)\s+)?\[?outlook\b
        |.{0,10}(?:从我的|從我的).{0,20}(?:发送|傳送)
        |.{0,20}から送信
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_DEVICE = re.compile(
    r"iphone|ipad|ipod|android|blackberry|mobil|móvil|cell|phone|telefon|smartfon|samsung"
    r"|galaxy|huawei|xiaomi|pixel|nokia|htc|sony|xperia|motorola|oneplus|wiko|tablet"
    r"|outlook|gmail|yahoo|aplikacji|\bapp\b|windows|\bios\b|mail|poczt|urządzeni|verizon"
    r"|k-9|spark|airmail|proton|typeapp|acompli|sparrow|\bmon\b|meinem|mijn|\bmin\b"
    r"|mojego|\bmi\b|\bmio\b|\bmeu\b",
    re.IGNORECASE,
)

# Outlook-style header blocks. A label is recognised with optional bold markers
# ("*From:*"), a space before the colon (French "De :"), or a full-width colon.
_LABEL = re.compile(
    r"""^[*_]?\s*(
        from|von|od|de|van|fra|från|da|lähettäjä|от|від|remitente|mittente|afzender
        |sent|date|to|cc|bcc|subject|reply-to|wysłano|wysłane|data|do|dw|udw|temat
        |gesendet|datum|an|betreff|kopie|envoyé\s+le|envoyé|à|a|objet|copie\s+à|verzonden
        |aan|onderwerp|sendt|til|emne|dato|skickat|till|ämne|kopia|inviato|oggetto|enviado
        |para|asunto|assunto|lähetetty|vastaanottaja|aihe|отправлено|кому|тема|дата
        |risposta|message\s+du|importance|priorytet|ważność|odesláno|komu|předmět
        |odoslané|predmet|feladó|küldve|címzett|tárgy|надіслано
    )\s*[*_]?\s*[:：]""",
    re.IGNORECASE | re.VERBOSE,
)
# Converted HTML can put a whole block on one line: "From: bob@example.com Date: Thu, ...".
_ONE_LINE_BLOCK = re.compile(
    r"^[*_]?\s*(?:from|von|od|de|van|fra|från|lähettäjä|от|від)\s*[*_]?\s*[:：].*\s[*_]?"
    r"(?:sent|date|wysłano|data|gesendet|datum|envoyé|verzonden|sendt|dato|skickat|inviato"
    r"|enviado|отправлено|дата)\s*[*_]?\s*[:：]\s*\S",
    re.IGNORECASE,
)
_FROM_LABELS = frozenset(
    {
        *("from", "von", "od", "de", "van", "fra", "från", "da", "lähettäjä", "от", "від"),
        *("remitente", "mittente", "afzender", "feladó"),
    }
)
_DATE_LABELS = frozenset(
    {
        *("sent", "date", "wysłano", "wysłane", "data", "gesendet", "datum", "envoyé"),
        *("envoyé le", "verzonden", "sendt", "dato", "skickat", "inviato", "enviado"),
        *("lähetetty", "отправлено", "дата", "message du", "odesláno", "odoslané", "küldve"),
        *("надіслано",),
    }
)
_TO_LABELS = frozenset(
    {
        *("to", "do", "an", "à", "a", "aan", "til", "till", "para", "кому", "vastaanottaja"),
        *("komu", "címzett"),
    }
)

_LETTER = re.compile(r"[^\W\d_]")

# Reply headers ("attribution lines"), tested on up to three joined lines.
# Times ("10:00", Nordic "kl. 20.42") but not pieces of IP addresses or version numbers.
_TIME = re.compile(r"(?<![\d.])\d{1,2}[:.]\d{2}(?![\d.])")
_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_DATE_OR_TIME = re.compile(
    rf"{_TIME.pattern}|\b(?:19|20)\d{{2}}\b|\b\d{{1,2}}[./-]\d{{1,2}}[./-]\d{{2,4}}\b"
)
_VERBS = (
    r"wrote|writes|napisał\(a\)|napisała|napisał|napisal\(a\)|napisala|napisal|pisze"
    r"|schrieb|geschrieben|a\s+écrit|a\s+ecrit|schreef|geschreven|skrev|skriver"
    r"|ha\s+scritto|escribió|escreveu|kirjoitti|написал\(а\)|написала|написал|пишет|пише"
    r"|написав|đã\s+viết|写道|寫道|yazdı|napsal\(a\)|napsala|napsal"
)
# The verb closes the header: "On <date>, Jan <j@x.pl> wrote:", "Jan Kowalski pisze:".
_VERB_AT_END = re.compile(rf"(?:^|(?<=[\W\d_]))(?:{_VERBS})\s*[:：]?[\s*-]*$", re.IGNORECASE)
# English "On <date>, <person> sent:" (Apple Mail variant).
_ON_SENT = re.compile(r"^[-*\s]*on\s.*\bsent\s*:$", re.IGNORECASE)
# The verb sits inside and a colon closes the header:
# "Am 3.11.2026 um 10:00 schrieb Jan <j@x.pl>:", "Jan <j@x.pl> schrieb am Mo., 3. Nov. 2026:".
_VERB_INSIDE = re.compile(
    r"(?:^|(?<=[\W\d_]))(?:schrieb|schreef|skrev|napisał|napisała|wrote|a\s+écrit|ha\s+scritto"
    r"|escribió|escreveu|kirjoitti|написал)(?=[\W\d_]|$)",
    re.IGNORECASE,
)
# Gmail's older header: "2016-03-03 17:21 GMT+01:00 Jan", "2013/7/20 Jan <j@x.pl>".
_GMAIL_OLD = re.compile(
    r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}\s+"
    r"(?:\d{1,2}:\d{2}\s+GMT[+-]\d{1,2}:?\d{2}\s+\S|.{0,80}<[^<>\s]+@[^<>\s]+>$)"
)
# A wrapped address can push the end of a header onto a line that looks quoted:
# "Am 21.04.2016 17:48 schrieb Jan <j@x.pl" + ">:".
_HEADER_TAIL = re.compile(r"^>\s*(?:wrote\s*)?[:：]$", re.IGNORECASE)
# Polymail spreads "On <date> <name> <email> wrote:" over lines with blanks in between.
_ON_DATE = re.compile(r"^[-*\s]*(?:on|at)\s.*\d", re.IGNORECASE)
_WROTE_END = re.compile(r"\bwrote\s*:$", re.IGNORECASE)
# Yahoo and others put the header on the author's last line: "Thanks--- On <date> ... wrote:".
_SHARED_LINE = re.compile(
    r"^(?P<text>.*?[^\s-])(?:\s*-{2,}\s*|\s+)(?P<header>On\s.{10,300}\swrote:)$"
)

# The first line of a header that a client wrapped: it has a date or an address and does
# not end a sentence ("On Thu, Jun 20, 2013 at 4:18 PM, Jan <" / "j@x.pl> wrote:").
_HEADER_START = re.compile(r"^(?=.*[\d@]).*[^.!?…]$")

# Longest joined header window worth matching: keeps regexes linear on huge lines.
_MAX_HEADER_CHARS = 400


def _prepare(text: str) -> tuple[list[str], list[str], dict[str, str]]:
    """(lines, their whitespace-normalised keys, link footnotes by number) of a body."""
    lines: list[str] = []
    notes: dict[str, str] = {}
    for raw in text.splitlines():
        line = _INVISIBLE.sub("", raw).rstrip()
        note = _FOOTNOTE.match(line)
        if note:
            notes.setdefault(note.group(1), line)
        else:
            lines.extend(_split_shared_line(line))
    keys = [" ".join(_SPACES.sub(" ", line).split()) for line in lines]
    lines = [line if key else "" for line, key in zip(lines, keys, strict=True)]
    return lines, keys, notes


def signature_block(text: str) -> str:
    """The "-- " signature that `strip_reply` cut off, without the history below it ('' if none).

    Never sent to anyone; agents' command lines written below their signature are read from it.
    """
    lines, keys, _ = _prepare(text)
    end, _ = _scan(lines, keys)
    if end >= len(lines) or keys[end] != "--":
        return ""
    return strip_reply("\n".join(lines[end + 1 :]))


def strip_reply(text: str) -> str:
    """The new text an author wrote in a reply: quoted history, reply headers and signature removed."""  # noqa: E501
    lines, keys, notes = _prepare(text)
    end, attribution = _scan(lines, keys)
    end = _extend_cut_upwards(keys, end)
    kept = _remove_quotes(lines[:end], attribution)

    first = next((i for i, line in enumerate(kept) if line), len(kept))
    last = max((i for i, line in enumerate(kept) if line), default=-1)
    kept = kept[first : last + 1]
    # Link targets of the kept text only: the others belong to the removed history.
    cited = set(_CITATION.findall("\n".join(kept)))
    kept_notes = [line for number, line in notes.items() if number in cited]
    return "\n".join([*kept, "", *kept_notes] if kept_notes else kept)


def _split_shared_line(line: str) -> list[str]:
    if "wrote:" not in line or len(line) > _MAX_HEADER_CHARS:
        return [line]
    match = _SHARED_LINE.match(line)
    if match and not _QUOTED.match(line) and _header_strength(match.group("header")):
        return [match.group("text"), match.group("header")]
    return [line]


def _scan(lines: list[str], keys: list[str]) -> tuple[int, set[int]]:
    """Index of the first line of unmarked history, and the attribution lines of `>` blocks."""
    attribution: set[int] = set()
    i = 0
    while i < len(lines):
        if not keys[i] or _QUOTED.match(lines[i]):
            i += 1
            continue
        key = keys[i]
        if _SIG_DELIMITER.match(key) or _MARKER.match(key) or _is_mobile_signature(key):
            return i, attribution
        if _is_header_block(keys, i):
            return i, attribution
        header = _reply_header(lines, keys, i)
        if header is not None:
            last, strong = header
            following = next((j for j in range(last + 1, len(lines)) if keys[j]), None)
            if following is not None and _QUOTED.match(lines[following]):
                attribution.update(range(i, last + 1))
                i = last + 1
                continue
            if strong:
                return i, attribution
        i += 1
    return len(lines), attribution


def _is_mobile_signature(key: str) -> bool:
    words = key.split()
    if len(words) > 12:
        return False
    if _SENT_FROM_MY.match(key):
        # "Sent from my desk, is much easier than my phone." is a sentence, not a signature.
        if "," in key or len(words) > 8:
            return bool(_DEVICE.search(" ".join(words[3:5])))
        return True
    if not _SENT_FROM.match(key):
        return False
    if _DEVICE.search(key):
        return True
    # "Sent from Mailbox", "Sent with Airmail": short, naming a capitalised app.
    return (
        key.lower().startswith("sent ")
        and 3 <= len(words) <= 5
        and words[2][:1].isupper()
        and not key.endswith(".")
    )


def _is_header_block(keys: list[str], start: int) -> bool:
    """Whether an Outlook-style "From:/Sent:/To:/Subject:" block starts at `start`."""
    if _ONE_LINE_BLOCK.match(keys[start]):
        return True
    match = _LABEL.match(keys[start])
    if not match:
        return False
    labels = {_label(match, keys[start])}
    continuation = 0
    for j in range(start + 1, min(start + 12, len(keys))):
        if not keys[j]:
            # Some clients (and HTML conversion) put a blank line between header lines.
            if j + 1 < len(keys) and _LABEL.match(keys[j + 1]):
                continue
            break
        match = _LABEL.match(keys[j])
        if match:
            labels.add(_label(match, keys[j]))
            continuation = 0
        else:
            continuation += 1  # a long "From:" or "Subject:" value wrapped onto the next line
            if continuation > 2:
                break
    if len(labels) < 2:
        return False
    # A customer's own "Data: 3.11.2026 / Temat: reklamacja" is not a quoted message: ask
    # for a sender, or a date together with a recipient.
    return bool(labels & _FROM_LABELS) or bool(labels & _DATE_LABELS and labels & _TO_LABELS)


def _label(match: re.Match[str], key: str) -> str:
    label = " ".join(match.group(1).lower().split())
    if label in _FROM_LABELS and not _LETTER.search(key[match.end() :]):
        # "Od: 2026-11-01 / Do: 2026-11-05" is a date range, not a sender and a recipient.
        return "?"
    return label


def _reply_header(lines: list[str], keys: list[str], start: int) -> tuple[int, bool] | None:
    """(last line, strong) of a reply header starting at `start`, or None.

    A strong header carries a date or an address and may cut unquoted text below it; a weak
    one ("Jan Kowalski pisze:") only counts as the attribution of a `>` block.
    """
    for size in range(3):
        last = start + size
        if last >= len(keys) or not keys[last]:
            break
        tail = _QUOTED.match(lines[last]) is not None
        if tail and not (size and _HEADER_TAIL.match(keys[last])):
            break
        window = " ".join(keys[start : last + 1])
        strength = _header_strength(window)
        if strength is None:
            if tail:
                break
            continue
        later = _header_strength(" ".join(keys[start + 1 : last + 1])) if size else None
        if later is not None and later >= strength and not _HEADER_START.search(keys[start]):
            # The header starts on a later line; this one is the author's text above it.
            return None
        return last, strength
    return _polymail_header(lines, keys, start)


def _header_strength(window: str) -> bool | None:
    if len(window) > _MAX_HEADER_CHARS:
        return None
    addressed = bool(_EMAIL.search(window))
    if _VERB_AT_END.search(window) or _ON_SENT.match(window):
        if addressed or _DIGIT.search(window):
            return True
        before_verb = _VERB_AT_END.sub("", window).split()
        return False if 1 <= len(before_verb) <= 6 else None
    if window.endswith((":", "：")) and (_TIME.search(window) or addressed):
        if _VERB_INSIDE.search(window):
            return True
        if addressed and _DATE_OR_TIME.search(window):
            # No verb at all: "30.09.2017, 18:30, "Jan" <j@x.pl>:", "2022年1月1日 9:00 <a@b.jp>:"
            return True
    if _GMAIL_OLD.match(window):
        return True
    return None


def _polymail_header(lines: list[str], keys: list[str], start: int) -> tuple[int, bool] | None:
    if not _ON_DATE.match(keys[start]) or len(keys[start]) > 120:
        return None
    for last in range(start + 1, min(start + 7, len(keys))):
        if len(keys[last]) > 120:
            return None
        if _WROTE_END.search(keys[last]):
            window = " ".join(keys[start : last + 1])
            return (last, True) if "@" in window else None
    return None


def _extend_cut_upwards(keys: list[str], end: int) -> int:
    """Move a cut above the blank and separator lines that introduce the history."""
    while end > 0 and (not keys[end - 1] or _SEPARATOR.match(keys[end - 1])):
        end -= 1
    return end


def _remove_quotes(lines: list[str], attribution: set[int]) -> list[str]:
    kept: list[str] = []
    after_removal = False
    for i, line in enumerate(lines):
        if i in attribution or _QUOTED.match(line) or _is_wrapped_quote(lines, i):
            after_removal = True
            continue
        if after_removal and not line:
            continue  # the blank lines that followed a removed block
        after_removal = False
        kept.append(line)
    return kept


def _is_wrapped_quote(lines: list[str], i: int) -> bool:
    """Whether unquoted line `i` is the tail of a quoted line that a client wrapped.

    It must sit right under a `>` line with at most one more unquoted line before the next
    `>` line, and either start in lower case or follow a line long enough to be wrapped.
    """
    line = lines[i]
    if not line or _QUOTED.match(line):
        return False
    top = i
    while top > 0 and lines[top - 1] and not _QUOTED.match(lines[top - 1]) and i - top < 2:
        top -= 1
    if top == 0 or not _QUOTED.match(lines[top - 1]):
        return False
    bottom = i
    while bottom + 1 < len(lines) and lines[bottom + 1] and not _QUOTED.match(lines[bottom + 1]):
        bottom += 1
        if bottom - top >= 2:
            return False
    if bottom + 1 >= len(lines) or not _QUOTED.match(lines[bottom + 1]):
        return False
    head = lines[top].lstrip()[:1]
    return (not head.isupper() and not head.isdigit()) or len(lines[top - 1]) >= 65
