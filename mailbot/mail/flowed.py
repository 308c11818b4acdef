"""Decode `format=flowed` plain text (RFC 3676): soft line breaks rejoined into paragraphs.

Thunderbird and Apple Mail wrap long lines at about 72 characters and mark each soft break with
a trailing space; a reader's client rejoins them. The rules followed (RFC 3676 §4):
- the quote depth is the number of leading `>`; a line's depth is taken before unstuffing;
- one leading space after the quote marks is space-stuffing and is removed;
- a line ending in a space is flowed (joined with the next line); with DelSp=yes that space
  was added by the sender and is removed too;
- the signature separator `-- ` is never flowed;
- a flowed line followed by a line of another quote depth (or by nothing) ends its paragraph.
Paragraphs are written back as `> ` quoted lines of their depth, as clients show them.
"""

from __future__ import annotations

SIGNATURE = "-- "


def _split(line: str) -> tuple[int, str]:
    """(quote depth, the line without quote marks and space-stuffing)."""
    depth = len(line) - len(line.lstrip(">"))
    line = line[depth:]
    return depth, line[1:] if line.startswith(" ") else line


def decode(text: str, delsp: bool = False) -> str:
    """The text with soft line breaks removed; `delsp` for DelSp=yes."""
    out: list[str] = []
    paragraph: list[str] = []
    depth_open = -1  # quote depth of the paragraph being joined; -1 when none is open

    def emit(depth: int, content: str) -> None:
        prefix = ">" * depth
        out.append(f"{prefix} {content}" if prefix and content else prefix + content)

    for raw in text.replace("\r\n", "\n").split("\n"):
        depth, line = _split(raw)
        if paragraph and depth != depth_open:  # §4.5: a flowed line before a depth change
            emit(depth_open, "".join(paragraph).rstrip(" "))
            paragraph = []
        flowed = line.endswith(" ") and line != SIGNATURE
        if flowed:
            paragraph.append(line[:-1] if delsp else line)
            depth_open = depth
            continue
        emit(depth, "".join(paragraph) + line)
        paragraph = []
    if paragraph:
        emit(depth_open, "".join(paragraph).rstrip(" "))
    return "\n".join(out)
