"""Article text: validation, sentences and whole-word spans, all as offsets into the ORIGINAL string.

Nothing here rewrites the article: every piece handed on is a (start, end) range of the text the
user gave, so an answer can be highlighted exactly where it stands.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


class InputError(ValueError):
    """Bad user input (empty, binary, too long); the message is meant for the user."""


def decode_article(data: str | bytes, max_chars: int) -> str:
    """Validate an article and return it as text.

    Args:
        data: the article as text, or bytes that must be UTF-8.
        max_chars: the configured limit on article length.
    Returns:
        The article, unchanged.
    Raises:
        InputError: empty or whitespace-only, not UTF-8, not valid Unicode (lone surrogates),
            binary, or longer than ``max_chars``.
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"The article is not UTF-8 text (bad byte at position {exc.start}).") from None
    return check_text(data, "article", max_chars)


def check_question(question: object, max_chars: int) -> str:
    """Validate a question; returns it stripped. Raises InputError when it is not text, empty,
    too long, not valid Unicode, binary, or has no letter or digit ("?!?" asks nothing)."""
    q = check_text(question, "question", max_chars, strip=True)
    if not any(c.isalnum() for c in q):
        raise InputError("The question has no letter or digit; type a question in words.")
    return q


def check_text(value: object, what: str, max_chars: int, strip: bool = False) -> str:
    """The checks every piece of user text passes: a ``str``, not blank, at most ``max_chars``
    (after stripping when ``strip``), valid Unicode (no lone UTF-16 surrogates, which Python
    strings from JSON can hold and tokenizers reject) and not binary. Returns the text
    (stripped when ``strip``); raises InputError naming ``what`` ("article", "question")."""
    if not isinstance(value, str):
        raise InputError(f"The {what} must be text, not {type(value).__name__}.")
    text = value.strip() if strip else value
    if not text.strip():
        raise InputError(f"The {what} is empty.")
    if len(text) > max_chars:
        raise InputError(f"The {what} has {len(text):,} characters; the limit is {max_chars:,}.")
    bad = _SURROGATE.search(text)
    if bad:
        raise InputError(f"The {what} is not valid Unicode text (a lone surrogate U+{ord(bad.group()):04X} "
                         f"at position {bad.start()}).")
    if looks_binary(text):
        raise InputError(f"The {what} looks like binary data (control characters), not text.")
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


def looks_binary(text: str) -> bool:
    """True when NUL bytes or many control characters say this is not prose (a PDF, an image)."""
    if "\x00" in text:
        return True
    sample = text[:20000]
    ctrl = sum(1 for c in sample if unicodedata.category(c) == "Cc" and c not in "\n\r\t\f\v")
    bad = sample.count("\ufffd")
    return (ctrl + bad) > max(8, 0.01 * len(sample))


@dataclass(frozen=True)
class Sentence:
    """A sentence as a range of the original article."""

    start: int
    end: int
    paragraph: int

    def text(self, article: str) -> str:
        return article[self.start:self.end]


_ABBREV = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "inc", "ltd", "co", "corp",
    "gen", "gov", "sen", "rep", "rev", "col", "lt", "sgt", "capt", "no", "fig", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "e.g", "i.e", "approx", "dept",
}
# a sentence ends at . ! ? … (optionally followed by closing quotes/brackets) before white space
_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
_PARA = re.compile(r"\n\s*\n|\r\n\s*\r\n")


def paragraphs(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank paragraph: blocks separated by blank lines, or by single
    newlines when the text has no blank lines at all."""
    sep = _PARA if _PARA.search(text) else re.compile(r"\n")
    out, pos = [], 0
    for m in sep.finditer(text):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, len(text)))
    return [_strip_range(text, s, e) for s, e in out if text[s:e].strip()]


def split_sentences(text: str) -> list[Sentence]:
    """Split into sentences with offsets; paragraph and line breaks always end a sentence."""
    out: list[Sentence] = []
    for p, (ps, pe) in enumerate(paragraphs(text)):
        for ls, le in _lines(text, ps, pe):
            start = ls
            for m in _END.finditer(text, ls, le):
                if _is_abbreviation(text, ls, m.start(), m.group()):
                    continue
                nxt = _next_char(text, m.end(), le)
                if nxt and (nxt.islower() and m.group()[0] == "."):
                    continue
                out.append(Sentence(*_strip_range(text, start, m.end()), p))
                start = m.end()
            if text[start:le].strip():
                out.append(Sentence(*_strip_range(text, start, le), p))
    return out


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out, pos = [], start
    for m in re.finditer(r"\n", text[start:end]):
        out.append((pos, start + m.start()))
        pos = start + m.end()
    out.append((pos, end))
    return [(s, e) for s, e in out if text[s:e].strip()]


def _next_char(text: str, pos: int, limit: int) -> str:
    while pos < limit and text[pos].isspace():
        pos += 1
    return text[pos] if pos < limit else ""


def _is_abbreviation(text: str, line_start: int, dot: int, mark: str) -> bool:
    """A period after a known abbreviation or an initial (U.S., J.) does not end a sentence."""
    if not mark.startswith("."):
        return False
    word_start = dot
    while word_start > line_start and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].lstrip("\"'“‘(").lower()
    if word in _ABBREV:
        return True
    return bool(re.fullmatch(r"(?:[a-z]\.)*[a-z]", word))  # U.S / J / e.g


def _strip_range(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def is_word_char(c: str) -> bool:
    """Letters and digits of space-delimited scripts. CJK and Thai characters are not joined into
    words, since those scripts do not put spaces between words."""
    if not c.isalnum():
        return False
    name = unicodedata.name(c, "")
    return not name.startswith(("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR"))


_APOSTROPHES = "'’"


def _joined(text: str, left: int, right: int) -> bool:
    """True when positions ``left`` and ``right`` belong to one word (letters, digits, and an
    apostrophe between letters as in "officer’s")."""
    a, b = text[left], text[right]
    if is_word_char(a) and is_word_char(b):
        return True
    if b in _APOSTROPHES and is_word_char(a):
        return right + 1 < len(text) and is_word_char(text[right + 1])
    if a in _APOSTROPHES and is_word_char(b):
        return left > 0 and is_word_char(text[left - 1])
    return False


_OPEN_CLOSE = {"“": "”", "‘": "’", '"': '"', "(": ")", "[": "]", "«": "»"}
_TRIM = " \t\r\n\f\v,;:"


_ARTICLE_WORDS = frozenset({"a", "an", "the"})


def answer_key(text: str) -> str:
    """What makes two answers the same answer: their words, case, punctuation and the articles
    a / an / the aside ("The tea set." and "tea set" share a key); "" for a text without a letter
    or digit."""
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower())
    return " ".join(w for w in kept.split() if w not in _ARTICLE_WORDS)


def whole_word_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a character span to whole words and tidy its edges.

    Never cuts a word in half (widens to the word boundaries), drops white space and separators
    (``,;:``) at the edges, and drops an opening quote or bracket whose partner is not in the span.
    """
    start, end = max(0, start), min(len(text), end)
    while 0 < start < len(text) and _joined(text, start - 1, start):
        start -= 1
    while 0 < end < len(text) and _joined(text, end - 1, end):
        end += 1
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    if end > start and text[start] in _OPEN_CLOSE and _OPEN_CLOSE[text[start]] not in text[start + 1:end]:
        start += 1
    if end > start and text[end - 1] in _OPEN_CLOSE.values():
        closer = text[end - 1]
        opener = next(o for o, c in _OPEN_CLOSE.items() if c == closer)
        if opener != closer and opener not in text[start:end - 1]:
            end -= 1
        elif opener == closer and text[start:end - 1].count(closer) % 2 == 0:
            end -= 1
    return _strip_range(text, start, end)


def sentence_index_at(sentences: list[Sentence], pos: int) -> int | None:
    """The index of the sentence containing character ``pos`` (binary search over sorted sentences)."""
    lo, hi = 0, len(sentences)
    while lo < hi:
        mid = (lo + hi) // 2
        if sentences[mid].end <= pos:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(sentences) and sentences[lo].start <= pos < sentences[lo].end:
        return lo
    return None


def sentence_at(sentences: list[Sentence], pos: int) -> Sentence | None:
    """The sentence containing character ``pos``."""
    i = sentence_index_at(sentences, pos)
    return sentences[i] if i is not None else None


_BOILERPLATE = re.compile(
    r"leave a (reply|comment)|your email address|required fields|all rights reserved|"
    r"subscribe|sign up|newsletter|cookie|privacy policy|terms of (use|service)|share this|"
    r"click here|read more|related (posts|articles)|check also|advertisement|follow us|"
    r"posted in|filed under|tags?:|comments?\b",
    re.I,
)


def is_prose(text: str) -> bool:
    """A paragraph that reads as article prose: long enough, ends like a sentence, no teaser."""
    t = text.strip()
    if len(t.split()) < 8 or t.endswith(("…", "...")):
        return False
    return bool(re.search(r"[.!?][\"'”’)\]]*$", t)) and not _BOILERPLATE.search(t[:80])


def body_end(text: str) -> int:
    """Where the article body ends: the trailing paragraphs that are not prose (page junk such as
    'Check Also', teaser links, 'Leave a Reply') are cut. Returns len(text) when none trail."""
    paras = paragraphs(text)
    for s, e in reversed(paras):
        if is_prose(text[s:e]):
            return e
    return len(text)


def body_sentences(text: str) -> list[Sentence]:
    """Sentences of the article body, without trailing page junk or boilerplate lines."""
    end = body_end(text)
    return [s for s in split_sentences(text)
            if s.end <= end and not _BOILERPLATE.search(text[s.start:s.end][:80])]
