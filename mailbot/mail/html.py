"""HTML to plain text for mail bodies, never rendering or executing anything."""

from __future__ import annotations

import html2text


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML mail body (links kept as text, no images)."""
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
        import re

        text = re.sub(r"<[^>]*>", " ", html)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
