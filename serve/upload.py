"""Uploaded files -> article text. Only the bytes are used: an uploaded file's name never becomes
a path. HTML gives its visible text (no scripts, styles or markup)."""
from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

from models.text import InputError, decode_article

_HTML_START = re.compile(rb"^\s*(<!doctype html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
_BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article",
          "header", "footer", "blockquote", "pre", "title", "ul", "ol", "table"}
_SKIP = {"script", "style", "noscript", "template", "svg", "head"}


class _Visible(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.title: list[str] = []
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
        if tag in _SKIP:
            self.skip += 1
        if tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in _SKIP and self.skip:
            self.skip -= 1
        if tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self.in_title:
            self.title.append(data)
        elif not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML page, paragraphs separated by blank lines."""
    p = _Visible()
    p.feed(html)
    p.close()
    text = unescape("".join(p.parts))
    lines = [" ".join(line.split()) for line in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join("".join(p.title).split())
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}"
    return text


def looks_like_html(data: bytes) -> bool:
    return bool(_HTML_START.match(data[:512])) or data[:2048].lower().count(b"</p>") >= 2


def upload_to_text(data: bytes, max_bytes: int, max_chars: int) -> str:
    """Decode an uploaded .txt/.md/.html file. Raises InputError for non-text or oversize files."""
    if len(data) > max_bytes:
        raise InputError(f"The file has {len(data):,} bytes; the limit is {max_bytes:,}.")
    if data.startswith((b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04")):
        raise InputError("This file is a PDF, an image or an archive, not text. Upload .txt, .md or .html.")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if looks_like_html(data):
        text = html_to_text(data.decode("utf-8", errors="replace"))
        return decode_article(text, max_chars)
    return decode_article(data, max_chars)
