"""The answer view's HTML, checked without a browser: the article shown once and escaped, marks
inline and labelled, overlaps showing every question, links to marks, consistent "Not found"."""
import html
import re

import pytest

from serve.answer_view import answer_marks, reading_note, render_answers, render_article, render_view, segments

ARTICLE = "Putin gave Kim an Aurus limo.\n\nKim gave <b>Putin</b> artworks & a dog."


def result(question, spans, answered=True, score=0.8, null=0.1):
    answers = [{"answer": ARTICLE[s:e], "start": s, "end": e, "selected": True, "score": score,
                "sentence": None} for s, e in spans]
    return {"question": question, "answer": answers[0]["answer"] if answered and answers else None,
            "score": score if answered else null, "answers": answers if answered else
            [{**a, "selected": False, "score": min(a["score"], 1 - null)} for a in answers],
            "sentence": "Putin gave Kim an Aurus limo."}


def visible_text(fragment: str) -> str:
    body = fragment.split('<div class="article">', 1)[1]
    body = re.sub(r'<span class="qlabel"[^>]*>Q\d+</span>', "", body)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def test_article_is_shown_once_escaped_with_paragraphs():
    limo = (ARTICLE.index("Aurus"), ARTICLE.index("limo") + 4)
    view = render_article(ARTICLE, [result("What did Putin give?", [limo])])
    assert visible_text(view) == ARTICLE
    assert "<b>Putin</b>" not in view and "&lt;b&gt;Putin&lt;/b&gt;" in view
    assert "\n\n" in view and "<br" not in view


def test_overlapping_answers_of_two_questions_are_both_marked():
    limo = (ARTICLE.index("Aurus"), ARTICLE.index("limo") + 4)
    gift = (ARTICLE.index("an Aurus"), ARTICLE.index("limo") + 4)
    view = render_article(ARTICLE, [result("Q?", [limo]), result("Gift?", [gift])])
    assert 'data-q="Q1 Q2"' in view and 'data-q="Q2"' in view
    assert view.count('class="qlabel"') == 2
    assert 'id="q1-a0"' in view and 'id="q2-a0"' in view
    shared = re.search(r'<mark[^>]*data-q="Q1 Q2"[^>]*>([^<]*)</mark>', view).group(1)
    assert shared == "Aurus limo"


def test_segments_cover_the_text_once():
    cuts = segments(20, [(2, 8), (5, 12)])
    assert [(s, e) for s, e, _ in cuts] == [(0, 2), (2, 5), (5, 8), (8, 12), (12, 20)]
    assert [sorted(c) for _, _, c in cuts] == [[], [0], [0, 1], [1], []]


def test_not_found_is_consistent_and_not_marked():
    limo = (ARTICLE.index("Aurus"), ARTICLE.index("limo") + 4)
    r = result("Capital of France?", [limo], answered=False, null=0.9)
    assert answer_marks([r]) == []
    shown = render_answers([r])
    assert "Not found in the article" in shown and "90%" in shown
    assert re.findall(r"\((\d+)%\)", shown) == ["10"], "the candidate is shown at most 1 - 90%"


def test_answer_links_point_at_their_marks():
    limo = (ARTICLE.index("Aurus"), ARTICLE.index("limo") + 4)
    art = (ARTICLE.index("artworks"), ARTICLE.index("artworks") + 8)
    rs = [result("Gifts?", [limo, art])]
    links = re.findall(r'href="#([^"]+)"', render_answers(rs))
    view = render_view(ARTICLE, rs)
    assert links == ["q1-a0", "q1-a1"] and all(f'id="{i}"' in view for i in links)


def test_summary_sentences_are_marked_too():
    view = render_view(ARTICLE, [], [(0, ARTICLE.index(".") + 1)])
    assert '<span class="summary-sentence">Putin gave Kim an Aurus limo.</span>' in view


def test_a_partly_read_long_article_says_so_beside_the_answer():
    limo = (ARTICLE.index("Aurus"), ARTICLE.index("limo") + 4)
    budgeted = {**result("Capital of France?", [limo], answered=False, null=0.9), "windows": 8,
                "windows_in_article": 110}
    assert "Read the 8 of 110 passages" in render_answers([budgeted])
    whole = {**budgeted, "windows": 5, "windows_in_article": 5}
    assert reading_note(whole) == "" and "reading-note" not in render_answers([whole])
    assert reading_note(result("Q?", [limo])) == ""        # results without the counts show nothing


def test_every_question_label_reads_on_its_colour():
    """Each label's text meets WCAG AA contrast (4.5) on its question's colour (Q7 on yellow, Q8 on
    grey included), and the label carries that text colour."""
    from serve.answer_view import PALETTE, contrast, label_style, label_text_colour
    for q, bg in enumerate(PALETTE):
        assert contrast(label_text_colour(bg), bg) >= 4.5, (q, bg)
        assert f"color:{label_text_colour(bg)}" in label_style(q)
    assert label_text_colour("#F0E442") == "#000000" and label_text_colour("#0072B2") == "#ffffff"
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)


def test_an_answer_said_in_several_places_shows_once_with_how_many_others():
    r = result("What was given?", [(0, 5)])
    r["answers"][0]["other_places"] = [[10, 15], [20, 25]]
    shown = render_answers([r])
    assert shown.count('class="answer-link"') == 1 and "(also in 2 other places)" in shown
    r["answers"][0]["other_places"] = []
    assert "other place" not in render_answers([r])
