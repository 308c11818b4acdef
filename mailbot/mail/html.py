"""HTML to plain text for mail bodies, never rendering or executing anything.

The text keeps the paragraph structure a reader sees in their mail client: a `<div>` (Gmail,
Apple Mail, Outlook on the web) and an Outlook `<p class=MsoNormal>` or zero-margin `<p>` is
one line, an empty one (`<div><br></div>`, `<p class=MsoNormal>&nbsp;</p>`) a blank line;
other paragraphs are separated by a blank line, and there is never more than one blank line
in a row nor any at the end.
"""

from __future__ import annotations

import re

import html2text

MAX_HTML = 2_000_000  # characters: a longer HTML body is cut before conversion
# A "<" that does not start a complete tag. Python's html.parser (used by html2text) takes
# quadratic time on unclosed tags (CVE-2025-6069, fixed only in later Python releases); such
# a "<" is text anyway, so it is escaped first, in one linear pass.
LONE_LT_RE = re.compile(r"<(?![^<>]*>)")
# Outlook's paragraph classes (MsoNormal, MsoPlainText, MsoListParagraph, ...) and inline
# styles without vertical margins: paragraphs that the reader sees as plain lines.
TIGHT_CLASS_RE = re.compile(r"(?:^|\s)Mso\w*", re.IGNORECASE)
NO_MARGIN_RE = re.compile(r"margin(?:-bottom)?\s*:\s*0(?:px|cm|in|pt|em)?\s*(?:;|$)", re.IGNORECASE)
BLANK_RUN_RE = re.compile(r"\n(?:[ \t]*\n){2,}")
BLANK_QUOTE_RUN_RE = re.compile(r"(?m)^(>+)\n(?:\1\n)+")  # quoted <div><br></div>s


def _tight_paragraph(attrs: dict[str, str | None]) -> bool:
    return bool(
        TIGHT_CLASS_RE.search(attrs.get("class") or "")
        or NO_MARGIN_RE.search(attrs.get("style") or "")
    )


class _Converter(html2text.HTML2Text):
    """html2text, with divs and tight paragraphs breaking the line instead of leaving a blank."""

    tight_p = False  # whether the open <p> is one line (p elements do not nest)

    def handle_tag(self, tag: str, attrs: dict[str, str | None], start: bool) -> None:
        if tag in ("div", "p") and not self.astack and not self.split_next_td:
            if tag == "p" and start:
                self.tight_p = _tight_paragraph(attrs)
            if tag == "div" or self.tight_p:
                self.current_tag = tag
                self.pbr()
                return
        super().handle_tag(tag, attrs, start)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML mail body (links kept as text, no images)."""
    html = LONE_LT_RE.sub("&lt;", html[:MAX_HTML])
    converter = _Converter(bodywidth=0)
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True
    converter.inline_links = False
    converter.protect_links = True
    converter.unicode_snob = True
    try:
        text = converter.handle(html)
    except Exception:  # the converter chokes on some broken markup; fall back to tag removal
        text = re.sub(r"<[^<>]*>", " ", html)
    lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
    lines = BLANK_QUOTE_RUN_RE.sub(r"\1\n", lines + "\n")
    return BLANK_RUN_RE.sub("\n\n", lines).strip()
