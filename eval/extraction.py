"""Main-text extraction from web pages, scored as the article-extraction benchmark scores it
(scrapinghub/article-extraction-benchmark, ``evaluate.py``): texts split into ``\\w+`` tokens,
4-token shingles counted, each page's true / false positives and false negatives normalised to
sum 1, precision and recall the means over pages, F1 from the two means.

``python -m eval --set html-extraction`` prints the extractors side by side on the development
pages (``data/html/article-extraction``; the benchmark's other pages are held back);
``python -m eval --set pdf-extraction`` the PDF readers on articles set as PDFs (``pdf_run``).
"""
from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from eval.sets import data_dir
from models.extract import extract, extract_html, plain_html_text

_TOKEN = re.compile(r"\w+", re.UNICODE | re.MULTILINE | re.IGNORECASE | re.DOTALL)


def shingles(text: str, n: int = 4) -> Counter:
    tokens = _TOKEN.findall(text or "")
    return Counter(" ".join(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i:i + n])


def shingle_counts(true: str, pred: str) -> tuple[float, float, float]:
    """(tp, fp, fn) of one page, normalised to sum 1 (all 0 when both are empty)."""
    t, p = shingles(true), shingles(pred)
    tp = sum(min(t[k], p[k]) for k in t.keys() | p.keys())
    fp = sum(max(0, p[k] - t[k]) for k in t.keys() | p.keys())
    fn = sum(max(0, t[k] - p[k]) for k in t.keys() | p.keys())
    s = tp + fp + fn
    return (tp / s, fp / s, fn / s) if s else (0.0, 0.0, 0.0)


def scores(pages: list[tuple[float, float, float]]) -> dict[str, float]:
    """Precision and recall, the means over pages; F1 of the two means."""
    precision = sum(tp / (tp + fp) if tp + fp > 0 else 0.0 for tp, fp, _ in pages) / len(pages)
    recall = sum(tp / (tp + fn) if tp + fn > 0 else 0.0 for tp, _, fn in pages) / len(pages)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def load_pages(folder: Path | None = None) -> list[tuple[str, str, str, str]]:
    """(id, url, html, article body) of every development page."""
    folder = folder or data_dir() / "html" / "article-extraction"
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    out = []
    for page_id, t in sorted(truth.items()):
        path = folder / "html" / f"{page_id}.html.gz"
        if path.exists():
            html = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
            out.append((page_id, t.get("url", ""), html, t.get("articleBody", "")))
    return out


def product_extractor(html: str, url: str) -> str:
    """What ``serve.load_article`` gives for a page's bytes: the headline, then the body."""
    return extract(html.encode("utf-8"), url).text


EXTRACTORS: dict[str, Callable[[str, str], str]] = {
    "all visible text (the former parser)": lambda html, url: plain_html_text(html),
    "trafilatura, the body (what the benchmark marks)": lambda html, url: extract_html(html, url, headline=False).text,
    "load_article: headline, then the body (shipped)": product_extractor,
}


def run(extractors: dict[str, Callable[[str, str], str]] = EXTRACTORS) -> dict[str, dict]:
    """Each extractor's scores, pages and seconds a page, on the development pages."""
    pages = load_pages()
    out = {}
    for name, fn in extractors.items():
        t0 = time.perf_counter()
        counts = [shingle_counts(body, fn(html, url)) for _, url, html, body in pages]
        out[name] = {**scores(counts), "pages": len(pages),
                     "ms_per_page": round((time.perf_counter() - t0) * 1000 / len(pages), 1)}
    return out


def table(results: dict[str, dict]) -> str:
    extra = "paragraphs_exact" in next(iter(results.values()))
    rows = ["| extractor | precision | recall | F1 | pages | ms a page |" + (" paragraphs exact |" if extra else ""),
            "|---|---|---|---|---|---|" + ("---|" if extra else "")]
    rows += [f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | **{r['f1']:.3f}** | {r['pages']} | "
             f"{r['ms_per_page']} |" + (f" {r['paragraphs_exact']:.1%} |" if extra else "")
             for name, r in results.items()]
    return "\n".join(rows)


def pdf_of(text: str) -> bytes:
    """``text`` set as a PDF the way a word processor sets it: A4, a Unicode font where the
    machine has one, paragraphs spaced (fpdf2, the test dependency)."""
    from fpdf import FPDF
    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    pdf = FPDF()
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    if font.exists():
        pdf.add_font("DejaVu", fname=str(font))
        pdf.set_font("DejaVu", size=11)
    else:
        pdf.set_font("Helvetica", size=11)
        text = text.encode("latin-1", "replace").decode("latin-1")
    for para in text.split("\n\n"):
        pdf.multi_cell(0, 5, para)
        pdf.ln(4)
    return bytes(pdf.output())


def pdfplumber_text(data: bytes) -> str:
    import io

    import pdfplumber
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def pypdf_plain_text(data: bytes) -> str:
    import io

    from pypdf import PdfReader
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def pdf_run(every: int = 1) -> dict[str, dict]:
    """PDF text layers against the text they were made from: the seed article's body and every
    ``every``-th XQuAD-en article, each set as a PDF (``pdf_of``); shingle P/R/F1 as for HTML,
    the share of articles whose paragraphs come back exactly, and milliseconds an article."""
    from eval.squad import join_articles, read_squad
    from models.examples import example_article
    from models.extract import extract_pdf
    from models.text import body_end
    seed = example_article()
    articles = list(dict.fromkeys(d.context for d in join_articles(
        read_squad(data_dir() / "qa" / "xquad-en" / "xquad.en.json"))))
    texts = [seed[:body_end(seed)]] + articles[::every]
    pdfs = [pdf_of(t) for t in texts]
    readers = {"pypdf, lines joined into paragraphs by their gaps (shipped)": lambda d: extract_pdf(d).text,
               "pypdf, its text as it comes": pypdf_plain_text,
               "pdfplumber (pdfminer.six)": pdfplumber_text}
    out = {}
    for name, fn in readers.items():
        t0 = time.perf_counter()
        got = [fn(d) for d in pdfs]
        ms = (time.perf_counter() - t0) * 1000 / len(pdfs)
        exact = sum(g.split("\n\n") == t.split("\n\n") for g, t in zip(got, texts)) / len(texts)
        out[name] = {**scores([shingle_counts(t, g) for t, g in zip(texts, got)]), "pages": len(texts),
                     "ms_per_page": round(ms, 1), "paragraphs_exact": round(exact, 3)}
    return out
