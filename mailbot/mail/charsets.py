"""Decode text bytes from mail: declared charsets, broken labels and best guesses for Polish."""

from __future__ import annotations

import codecs
import unicodedata

# The one definition of the Polish letters; mailbot.pipeline.classify derives its set from it.
POLISH_LETTERS = frozenset("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ")
# Characters a wrong single-byte charset produces from Polish text (¹ ¿ ³ ¥ ± ¶ ¼ ...).
MOJIBAKE_HINTS = frozenset("¹¿³¥±¶¼¦¬ªº¯£ñæêœŸŒ\x80\x81\x8a\x8c\x8f\x9a\x9c\x9f")
# Labels seen in the wild that name a real charset badly.
CHARSET_ALIASES = {
    "uft-8": "utf-8",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "x-user-defined": "windows-1252",
    "ansi_x3.4-1968": "ascii",
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-2022-jp": "iso2022_jp_ext",
    "shift-jis": "cp932",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "latin-2": "iso-8859-2",
}
NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})
SINGLE_BYTE_LATIN = {"ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15", "iso8859-2", "cp1250"}


def fold(text: str) -> str:
    """Lower case without diacritics (ł too): 'PILNE' matches 'pilne', '#Język' '#jezyk'."""
    text = unicodedata.normalize("NFKD", text.lower()).replace("ł", "l")
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _codec(label: str | None) -> str | None:
    """Python's codec name for a MIME charset label, or None if unknown."""
    if not label:
        return None
    label = label.strip().strip('"').lower()
    label = CHARSET_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    # Only real character sets: a label may name any Python codec (base64, zlib, rot13, idna,
    # punycode, unicode-escape, undefined), and those are no charsets of mail text.
    if not getattr(info, "_is_text_encoding", True) or info.name in NOT_CHARSETS:
        return None
    return info.name


def _polish_score(text: str) -> int:
    return sum(ch in POLISH_LETTERS for ch in text) - 2 * sum(ch in MOJIBAKE_HINTS for ch in text)


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Decode text bytes with their declared charset, guessing when it is absent or wrong.

    Valid UTF-8 wins over a single-byte label (8-bit text is almost never valid UTF-8 by
    accident); a single-byte Latin label is second-guessed between windows-1250 and ISO-8859-2
    when that yields Polish letters instead of mojibake; unknown labels fall back the same way.
    """
    codec = _codec(declared)
    # 7-bit charsets (ISO-2022-*, UTF-7) look like ASCII but are not.
    if data.isascii() and codec not in ("utf-7", "hz") and b"\x1b" not in data:
        return data.decode("ascii")
    if codec in (None, *SINGLE_BYTE_LATIN, "utf-8"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if codec and codec not in SINGLE_BYTE_LATIN and codec != "utf-8":
        try:
            return data.decode(codec)
        except (UnicodeError, LookupError):  # UnicodeError: some codecs raise its base class
            pass
    candidates = [c for c in (codec, "cp1250", "iso8859-2", "cp1252") if c and c != "utf-8"]
    decoded = []
    for candidate in dict.fromkeys(candidates):
        try:
            decoded.append(data.decode(candidate, errors="replace"))
        except (UnicodeError, LookupError):  # a codec that fails even with errors="replace"
            continue
    if not decoded:
        return data.decode("cp1252", errors="replace")
    # max() keeps the first of equals: the declared charset wins unless another reads as Polish.
    return max(decoded, key=_polish_score)
