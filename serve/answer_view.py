"""The page's answer view: the article once, with every question's answers marked in place.

Pure functions from (article, results) to HTML, so the rules are tested without a browser:

- the article text is escaped; no user text ever becomes markup;
- marks are inline (no line breaks added), paragraphs and line breaks of the article are kept
  (``white-space: pre-wrap``) and words are never split at line ends;
- each answer carries its question's label (Q1, Q2, ...) and colour; where answers of several
  questions overlap, the overlapping text shows every question's colour (stacked underlines) and
  every label stays visible;
- the sentences the summary took are marked too (a dotted underline);
- each answer in the answer list links to its mark (``#q1-a0``), and the legend lists the questions
  in order.
"""
from __future__ import annotations

import html

# colour-blind-safe palette (Okabe-Ito), cycled; each mark also carries its label, so colour is
# never the only cue
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442", "#999999")
NOT_FOUND = "Not found in the article"

CSS = """
.aqa .article { white-space: pre-wrap; overflow-wrap: normal; word-break: normal;
  line-height: 1.9; max-height: 70vh; overflow-y: auto; padding: 0.8em; border: 1px solid #ddd;
  border-radius: 6px; font-size: 0.95rem; }
.aqa mark { background: none; color: inherit; padding: 0 1px; border-radius: 2px; }
.aqa .qlabel { font-size: 0.7em; font-weight: 700; border-radius: 3px;
  padding: 0 3px; margin-right: 2px; vertical-align: super; white-space: nowrap; }
.aqa .summary-sentence { text-decoration: underline dotted #666; text-underline-offset: 4px; }
.aqa .legend { margin: 0.4em 0; display: flex; flex-wrap: wrap; gap: 0.8em; }
.aqa .legend span.key { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px;
  margin-right: 0.3em; vertical-align: middle; }
.aqa mark.flash { outline: 3px solid #000; }
"""


def colour(q: int) -> str:
    """The colour of question ``q`` (0-based)."""
    return PALETTE[q % len(PALETTE)]


def _luminance(hex_colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def label_text_colour(background: str) -> str:
    """Black or white, whichever reads better on ``background``."""
    return max(("#000000", "#ffffff"), key=lambda c: contrast(c, background))


def label_style(q: int) -> str:
    """The style of question ``q``'s label: its colour, and text that reads on it."""
    return f"background:{colour(q)};color:{label_text_colour(colour(q))}"


def mark_id(q: int, a: int) -> str:
    """The HTML id of question ``q``'s ``a``-th selected answer (both 0-based)."""
    return f"q{q + 1}-a{a}"


def answer_marks(results: list[dict]) -> list[tuple[int, int, int, int]]:
    """(start, end, question, answer number) of every selected answer span, question order."""
    marks = []
    for q, r in enumerate(results):
        chosen = [a for a in r.get("answers", []) if a.get("selected")] if r.get("answer") is not None else []
        for j, a in enumerate(chosen):
            if a["end"] > a["start"]:
                marks.append((a["start"], a["end"], q, j))
    return marks


def segments(length: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int, frozenset[int]]]:
    """Cut [0, length) at every range boundary: (start, end, indices of the ranges covering it).

    Consecutive pieces cover the text exactly once, so the article is shown once and every
    range, overlapping or not, covers whole pieces.
    """
    cuts = sorted({0, length, *(max(0, min(length, x)) for r in ranges for x in r)})
    out = []
    for s, e in zip(cuts, cuts[1:]):
        cover = frozenset(i for i, (a, b) in enumerate(ranges) if a <= s and e <= b)
        out.append((s, e, cover))
    return out


def render_article(article: str, results: list[dict], summary_ranges: list[tuple[int, int]] = ()) -> str:
    """The article as HTML with each question's selected answers marked (see module docstring)."""
    marks = answer_marks(results)
    ranges = [(s, e) for s, e, _, _ in marks] + list(summary_ranges)
    n_marks = len(marks)
    out = []
    for s, e, cover in segments(len(article), ranges):
        text = html.escape(article[s:e])
        in_marks = sorted((i for i in cover if i < n_marks), key=lambda i: marks[i][2])
        in_summary = any(i >= n_marks for i in cover)
        labels = "".join(_label(marks[i][2]) for i in in_marks if marks[i][0] == s)
        if in_marks:
            first = next((i for i in in_marks if marks[i][0] == s), None)
            ident = f' id="{mark_id(marks[first][2], marks[first][3])}"' if first is not None else ""
            qs = " ".join(f"Q{marks[i][2] + 1}" for i in in_marks)
            shadows = ", ".join(f"inset 0 -{3 * (k + 1)}px 0 {colour(marks[i][2])}" for k, i in enumerate(in_marks))
            bg = colour(marks[in_marks[0]][2]) + "33"          # the first question's colour, light
            text = (f'<mark{ident} data-q="{qs}" title="{qs}" '
                    f'style="background:{bg};box-shadow:{shadows}">{text}</mark>')
        if in_summary:
            text = f'<span class="summary-sentence">{text}</span>'
        out.append(labels + text)
    return '<div class="article">' + "".join(out) + "</div>"


def _label(q: int) -> str:
    return f'<span class="qlabel" style="{label_style(q)}">Q{q + 1}</span>'


def render_legend(results: list[dict], summary: bool = False) -> str:
    """The questions in order, each with its colour and label."""
    items = [f'<span><span class="key" style="background:{colour(q)}"></span>Q{q + 1}. '
             f'{html.escape(r["question"])}</span>' for q, r in enumerate(results)]
    if summary:
        items.append('<span class="summary-sentence">summary sentence</span>')
    return '<div class="legend">' + "".join(items) + "</div>"


def render_answers(results: list[dict]) -> str:
    """Per question: the answer(s) as links to their marks with the confidence that they are
    right, the sentence they stand in, and the other candidates; or "Not found in the article"
    with the confidence that the article does not hold the answer."""
    out = []
    for q, r in enumerate(results):
        head = (f'<h3 id="answer-q{q + 1}"><span class="qlabel" style="{label_style(q)}">Q{q + 1}</span> '
                f'{html.escape(r["question"])}</h3>')
        if r["answer"] is None:
            body = (f"<p><strong>{NOT_FOUND}</strong> (confidence {r['score']:.0%} that the article "
                    f"does not say)</p>")
            cands = r["answers"]
            label = "Closest passages, not taken as answers"
        else:
            chosen = [a for a in r["answers"] if a["selected"]]
            if len(chosen) > 1:     # a list answer: each item with the sentence it stands in
                body = "<ul class='answer-list'>" + "".join(
                    f"<li>{_link(q, j, a)}" + (f"<blockquote>{_show(a['sentence'])}</blockquote>" if a.get("sentence")
                                               else "") + "</li>" for j, a in enumerate(chosen)) + "</ul>"
            else:
                links = "; ".join(_link(q, j, a) for j, a in enumerate(chosen))
                sentence = f"<blockquote>{_show(r['sentence'] or '')}</blockquote>" if r.get("sentence") else ""
                body = f"<p>{links}</p>{sentence}"
            cands = [a for a in r["answers"] if not a["selected"]]
            label = "Other candidates"
        if cands:
            body += (f"<p class='candidates'>{label}: "
                     + ", ".join(f"{_show(a['answer'])} ({a['score']:.0%})" for a in cands) + "</p>")
        body += reading_note(r)
        out.append(head + body)
    return f'<style>{CSS}</style><div class="aqa">' + "".join(out) + "</div>" if out else ""


def _link(q: int, j: int, a: dict) -> str:
    """One selected answer: a link to its mark, with the confidence that it is right, and how
    many other places of the article say the same."""
    n = len(a.get("other_places") or [])
    places = f' <span class="places">(also in {n} other place{"s" if n > 1 else ""})</span>' if n else ""
    return (f'<a href="#{mark_id(q, j)}" class="answer-link"><strong>{_show(a["answer"])}</strong></a>'
            f' ({a["score"]:.0%}){places}')


def reading_note(result: dict) -> str:
    """A line saying that only part of a long article was read for this question (the reading
    budget, ``qa.max_windows``), so that "Not found" is read as "not in the passages read";
    nothing when the article was read whole."""
    read, whole = result.get("windows", 0), result.get("windows_in_article", 0)
    if not read or whole <= read:
        return ""
    return (f"<p class='reading-note'>Read the {read} of {whole} passages of the article that share "
            f"the most words with the question.</p>")


def _show(text: str) -> str:
    """Text for the answer list: white space collapsed (an answer may span a line break), escaped."""
    return html.escape(" ".join(text.split()))


def render_view(article: str, results: list[dict], summary_ranges: list[tuple[int, int]] = ()) -> str:
    """Legend and marked article, in one block for ``gr.HTML`` (with its own style)."""
    if not results and not summary_ranges:
        return ""
    return (f'<style>{CSS}</style><div class="aqa" id="answer-view">'
            f"{render_legend(results, bool(summary_ranges))}{render_article(article, results, summary_ranges)}</div>")
