"""HTML to plain text for mail bodies, never rendering or executing anything."""

from __future__ import annotations

import re

import html2text

MAX_HTML = 2_000_000  # characters: a longer HTML body is cut before conversion
# A "<" that does not start a complete tag. Python's html.parser (used by html2text) takes
# quadratic time on unclosed tags (CVE-2025-6069, fixed only in later Python releases); such
# a "<" is text anyway, so it is escaped first, in one linear pass.
LONE_LT_RE = re.compile(r"<(?![^<>]*>)")


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML mail body (links kept as text, no images)."""
    html = LONE_LT_RE.sub("&lt;", html[:MAX_HTML])
    converter = html2text.HTML2Text(bodywidth=0)
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
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
