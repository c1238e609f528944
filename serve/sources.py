"""An article from wherever a person has it: a link, a file path or the bytes of a file (HTML
page, PDF or text), as text and what is known about it (``models.extract.Extracted``)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from models.extract import Extracted, extract
from models.profiles import Limits, load_profile
from models.text import InputError, decode_article
from serve.fetch import FetchPolicy, fetch


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(//)?", re.I)


def is_link(source: object) -> bool:
    """A URL (``scheme://...``, or ``file:``, ``data:``, ``javascript:``), not a path."""
    if not isinstance(source, str):
        return False
    m = _SCHEME.match(source.strip())
    return bool(m) and (bool(m.group(1)) or source.strip().lower().startswith(("file:", "data:", "javascript:")))


def load_article(source: str | bytes | os.PathLike, profile: str | os.PathLike | None = None,
                 limits: Limits | None = None) -> Extracted:
    """The article of a link (``http(s)://``, fetched under ``serve.fetch``'s guards), a file path
    or a file's bytes: ``.text`` (what to ask about; the main text of a web page, the text layer
    of a PDF), and ``.title``, ``.author``, ``.date`` where the source says, ``.kind``.

    Raises InputError with a message for the user (unreachable link, refused address, a PDF
    without text, a file over the limits, ...)."""
    lim = limits or load_profile(profile).limits
    url = None
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if len(data) > lim.max_upload_bytes:
            raise InputError(f"The file has {len(data):,} bytes; the limit is {lim.max_upload_bytes:,}.")
        content_type = None
    elif is_link(source):
        if str(source).strip().lower().startswith("file:"):
            raise InputError("file:// links are not read; give the file's path or upload it.")
        fetched = fetch(str(source), FetchPolicy.from_limits(lim))
        data, content_type, url = fetched.data, fetched.content_type, fetched.url
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise InputError(f"No such file: {path}")
        if path.stat().st_size > lim.max_fetch_bytes:
            raise InputError(f"The file has {path.stat().st_size:,} bytes; the limit is {lim.max_fetch_bytes:,}.")
        data, content_type = path.read_bytes(), None
    article = extract(data, url, content_type)
    article.text = decode_article(article.text, lim.max_article_chars)
    return article
