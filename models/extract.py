"""Article text from what people have: an HTML page (its main text, as a person reads it), a PDF
(its text layer) or plain text; with the title, author and date where the page has them.

HTML goes through trafilatura (main-text extraction made for news and blog pages: navigation,
headers, footers, related-article lists and comments left out); ``plain_html_text``, every visible
text node, is kept for pages where it finds no main text. PDFs through pypdf's text layer; a PDF
without one (a scan) is refused with a message, there is no OCR. Everything here is offline: a
link is fetched by ``serve.fetch`` and its bytes come here.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser

from models.text import InputError

_HTML_START = re.compile(rb"^\s*(<!doctype html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
_BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article",
          "header", "footer", "blockquote", "pre", "title", "ul", "ol", "table"}
_SKIP = {"script", "style", "noscript", "template", "svg", "head"}


@dataclass
class Extracted:
    """An article's text and what is known about it (None where the source does not say)."""

    text: str
    title: str | None = None
    author: str | None = None
    date: str | None = None
    kind: str = "text"          # "html", "pdf" or "text": what the source was

    def header(self) -> str:
        """One line for the page above the article: title, author and date where known."""
        return " · ".join(x for x in (self.title, self.author, self.date) if x)


def looks_like_html(data: bytes) -> bool:
    return bool(_HTML_START.match(data[:512])) or data[:2048].lower().count(b"</p>") >= 2


def is_pdf(data: bytes) -> bool:
    return data.lstrip()[:5] == b"%PDF-"


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


def plain_html_text(html: str) -> str:
    """Every visible text node of an HTML page (navigation and footers included), paragraphs
    separated by blank lines, the title first."""
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


_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_HEADING = re.compile(r"^#{1,6}\s+", re.M)
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>])")


def _paragraphs(text: str) -> str:
    """One blank line between paragraphs, white space within a line collapsed."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n\n".join(line for line in lines if line)


def _plain_markdown(text: str) -> str:
    """trafilatura's formatted text as plain paragraphs: emphasis marks and heading marks
    dropped, one paragraph a line. (Its plain-text output breaks a line at every inline element,
    "Putin gave\nKim\na\nlimo", which would split sentences.)"""
    text = _HEADING.sub("", text)
    text = _EMPHASIS.sub(lambda m: m.group(2) if m.group(2) is not None else m.group(3), text)
    return _paragraphs(_ESCAPED.sub(r"\1", text))


def extract_html(html: str, url: str | None = None, headline: bool = True) -> Extracted:
    """The main text of a page (trafilatura), headline first, with its title, author and date;
    the page's whole visible text where no main text is found (a fragment, a page of links).
    ``headline=False``: the body alone (what the article-extraction benchmark marks)."""
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                      include_tables=True, include_formatting=True, deduplicate=False)
    text = _plain_markdown(doc.text) if doc is not None and doc.text else ""
    if not text:
        return Extracted(plain_html_text(html), kind="html")
    if headline and doc.title and not text.startswith(doc.title):
        text = f"{doc.title}\n\n{text}"          # the headline is part of what a person reads
    return Extracted(text, doc.title or None, doc.author or None, doc.date or None, kind="html")


def extract_pdf(data: bytes) -> Extracted:
    """The text layer of a PDF, pages in order, its lines joined into paragraphs where the page
    leaves a larger gap between them (``join_lines``). Raises InputError for a PDF that cannot be
    read or has no text."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InputError("This PDF is encrypted; save it without a password and upload it again.")
        pages = [join_lines(*_page_lines(page)) for page in reader.pages]
        meta = reader.metadata
    except PdfReadError as exc:
        raise InputError(f"This PDF cannot be read ({exc}).") from None
    text = ""
    for page in (p for p in pages if p.strip()):
        # a paragraph that runs on over the page break stays one
        text += page if not text else (" " if not text.endswith((".", "!", "?", "”", '"', ":")) else "\n\n") + page
    if not text.strip():
        raise InputError("This PDF has no text layer (a scan or images only); there is no OCR here. "
                         "Paste its text, or upload a PDF with selectable text.")
    title = (meta.title or None) if meta else None
    author = (meta.author or None) if meta else None
    return Extracted(text, title, author, kind="pdf")


def _page_lines(page) -> tuple[list[tuple[float | None, str]], float | None]:
    """(height on the page, text) of each line pypdf reads, top to bottom, and the text's usual
    font size; heights None where the fragments' positions do not line up with the lines."""
    heights: list[float] = []
    sizes: list[float] = []

    def seen(text, cm, tm, font, size):
        y = tm[5] * cm[3] + cm[5]
        if text.strip():
            sizes.append(abs(size * (tm[3] or 1) * (cm[3] or 1)))
            if not heights or abs(heights[-1] - y) > 0.5:
                heights.append(y)           # a new line starts where the height changes
    text = page.extract_text(visitor_text=seen) or ""
    lines = [line for line in text.splitlines() if line.strip()]
    size = sorted(sizes)[len(sizes) // 2] if sizes else None
    if len(heights) != len(lines):
        return [(None, line) for line in lines], size
    return list(zip(heights, lines)), size


def join_lines(lines: list[tuple[float | None, str]], font_size: float | None = None) -> str:
    """Lines -> paragraphs: a gap between two lines wider than 1.4 times the usual line spacing
    (the median gap, at most 1.45 font sizes) starts a paragraph (without heights: a short line
    ending a sentence ends one); a word split by a hyphen at a line end is joined."""
    gaps = [a[0] - b[0] for a, b in zip(lines, lines[1:]) if a[0] is not None and b[0] is not None and a[0] > b[0]]
    usual = sorted(gaps)[len(gaps) // 2] if gaps else None
    if usual is not None and font_size:
        usual = min(usual, 1.45 * font_size)
    paragraphs: list[str] = []
    current = ""
    for i, (height, line) in enumerate(lines):
        line = " ".join(line.split())
        if current.endswith("-") and len(current) > 1 and current[-2].isalpha() and line[:1].islower():
            current = current[:-1] + line
        else:
            current = f"{current} {line}" if current else line
        nxt = lines[i + 1][0] if i + 1 < len(lines) else None
        if usual is not None and height is not None and nxt is not None:
            ends = height - nxt > 1.4 * usual
        else:
            ends = current.endswith((".", "!", "?", "”", '"')) and len(line) < 60
        if ends:
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)


def extract(data: bytes, url: str | None = None, content_type: str | None = None) -> Extracted:
    """Any source's bytes -> its article: a PDF, an HTML page or plain UTF-8 text (by the content
    type when given, else by the bytes). Raises InputError for anything else."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/pdf" or is_pdf(data):
        return extract_pdf(data)
    if data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04")):
        raise InputError("This file is an image or an archive, not text. Give a web page, a PDF or text.")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if ctype in ("text/html", "application/xhtml+xml") or looks_like_html(data):
        return extract_html(data.decode("utf-8", errors="replace"), url)
    try:
        return Extracted(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError("This is not UTF-8 text, a web page or a PDF.") from None
