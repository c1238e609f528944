"""Quality floors for the shipped embedded reader (models/mpnet_qa: MPNet-base + LoRA adapter):
real thresholds that fail when answers get worse. Measured values are in the model card; the
floors sit a little below them."""
from pathlib import Path

import pytest

from eval.runner import run_qa, summarize_qa
from eval.sets import load_qa_set
from serve.api import get_engine, predict
from tests.conftest import long_article

SAMPLE = Path(__file__).resolve().parent / "data" / "xquad_en_sample.json"
SEED_F1_FLOOR = 82.0            # measured 85.35 (m4 with the sentence prior and the calibrator refitted with it;
                                # 83.54 before the refit, 78.08 without the prior, m3 77.98, m2 72.46)
SEED_HAS_ANSWER_F1_FLOOR = 86.0  # measured 89.47 (83.22 without the prior; m3 83.11, m2 78.86, MiniLM 77.28)
XQUAD_SAMPLE_F1_FLOOR = 78.0   # measured 82.55 with m4 (m3 82.45, m1 79.16) on these 200 development questions


@pytest.fixture(scope="module")
def engine():
    e = get_engine("embedded")
    e.warm_up(qa=True, summarizer=False)
    return e


def test_the_embedded_profile_runs_the_mpnet_adapter(engine):
    assert type(engine.reader.model).__name__ == "MPNetForQuestionAnswering"
    assert not any("lora" in n for n, _ in engine.reader.model.named_parameters()), "merged at load"
    assert engine.profile.qa.calibrator, "the calibrator travels with the weights (inference.json)"


def test_putin_gave_kim_the_limo(seed_article):
    """The reader alone answers "a grand welcome" (from "Kim gave him a grand welcome"); the
    sentence prior (qa.sentence_prior) prefers the sentence that says what Putin gave Kim."""
    r = predict(seed_article, "What did Putin give Kim?")
    assert r["answer"] is not None and "Aurus limo" in r["answer"], r["answer"]
    alone = get_engine("embedded").reader.read(seed_article, ["What did Putin give Kim?"],
                                               *get_engine("embedded").reader.sanitize(sentence_prior=0.0))[0]
    assert alone["answer"] == "a grand welcome", alone["answer"]    # what the prior changes


@pytest.mark.xfail(strict=True, reason="answers the limo: neither the reader nor the sentence encoder tells "
                                       "giver from receiver (model card, known weaknesses)")
def test_kim_gave_putin_artworks(seed_article):
    r = predict(seed_article, "What did Kim give Putin?")
    assert r["answer"] is not None and "artworks" in r["answer"], r["answer"]


def test_a_list_question_is_answered_with_its_items(seed_article):
    """The list tagger (models/list_tagger.py) splits the reader's one span naming the three
    people into items, each selected with its own offsets, in article order; ``answer`` stays the
    reader's best span."""
    r = predict(seed_article, "Which members of his leadership team did Kim introduce?")
    chosen = [a for a in r["answers"] if a["selected"]]
    assert len(chosen) >= 3, [a["answer"] for a in chosen]
    assert [a["start"] for a in chosen] == sorted(a["start"] for a in chosen)
    for name in ("Choe Son Hui", "Jo Yong Won"):
        assert sum(name in a["answer"] for a in chosen) == 1, [a["answer"] for a in chosen]
    assert all(seed_article[a["start"]:a["end"]] == a["answer"] for a in chosen)
    assert r["answer"] is not None and "Choe Son Hui" in r["answer"] and "Kim Yo Jong" in r["answer"]


def test_a_single_answer_question_keeps_one_span(seed_article):
    r = predict(seed_article, "When did the Soviet Union collapse?")
    assert [a["answer"] for a in r["answers"] if a["selected"]] == [r["answer"]] and "1991" in r["answer"]


def test_limo_is_among_the_candidates(seed_article):
    r = predict(seed_article, "What did Putin give Kim?", top_k=3)
    assert any("limo" in a["answer"] for a in r["answers"]), [a["answer"] for a in r["answers"]]


def test_gift_question_is_answered_with_a_gift(seed_article):
    r = predict(seed_article, "What gifts were exchanged?", top_k=5)
    shown = " | ".join(a["answer"] for a in r["answers"])
    assert r["answer"] is not None and ("limo" in shown or "tea set" in shown), shown


@pytest.mark.parametrize("question", ["Who won the 2022 World Cup?",
                                      "How long did the talks between Putin and Kim last, in hours?"])
def test_not_in_the_article(seed_article, question):
    r = predict(seed_article, question)
    assert r["answer"] is None and r["score"] > 0.5


def test_never_confidently_wrong_when_the_article_does_not_say(seed_article):
    """The reader may offer a span for this (model card), but must say it is unlikely to be right."""
    r = predict(seed_article, "What is the population of Pyongyang?")
    assert r["answer"] is None or r["score"] < 0.3, (r["answer"], r["score"])


def test_the_limo_cost_is_at_least_a_coin_flip_for_not_in_the_article(seed_article):
    """The article names the limo but not its cost. Its sentence is the one most like the question,
    so the reader's scores cannot rule it out: the calibrator refitted with the sentence prior on
    says "not in the article" at P 0.500 in float32 (the one fitted without it answered
    'Russian-made' at 0.36, P(not in the article) 0.46). A coin flip either way, so what is
    asserted is the guard: never shown as likelier right than not in the article."""
    r = predict(seed_article, "How much did the Aurus limo cost?")
    assert r["no_answer_score"] >= 0.45, r
    assert r["answer"] is None or r["score"] <= 0.55, (r["answer"], r["score"])


def test_seed_gold_set_floor(engine):
    totals = summarize_qa(run_qa(engine, load_qa_set("seed")))
    assert totals["errors"] == 0
    assert totals["f1"] >= SEED_F1_FLOOR, totals
    assert totals["has_answer_f1"] >= SEED_HAS_ANSWER_F1_FLOOR, totals


def test_xquad_fixed_sample_floor(engine):
    totals = summarize_qa(run_qa(engine, load_qa_set(str(SAMPLE))))
    assert totals["f1"] >= XQUAD_SAMPLE_F1_FLOOR, totals


def test_a_20000_word_article_still_reads_the_right_window(seed_article, engine):
    """The seed article after 20,000 words of other text: the question reads only its reading
    budget of windows (qa.max_windows), chosen over the whole article, and the answer still
    comes from the seed article at the end."""
    filler = long_article(20000)
    article = filler + "\n\n" + seed_article
    budget = engine.profile.qa.max_windows
    r = predict(article, "Who is Kim's powerful sister?")
    assert 0 < budget < 20 and 1 <= r["windows"] <= budget and r["windows_in_article"] > 80
    assert r["answer"] is not None and "Kim Yo Jong" in r["answer"] and r["start"] > len(filler), r["answer"]
    # the flagship question reads the gift paragraph's window and, with the sentence prior, answers
    # with the limo from the seed part
    gift = predict(article, "What did Putin give Kim?", top_k=3)
    assert gift["answer"] is not None and "Aurus limo" in gift["answer"] and gift["start"] > len(filler), gift["answers"]
    # on an article the size of the seed article the budget leaves only the windows that match the
    # question far less than the best one unread (qa.min_window_relevance): the answer of a whole read
    unbudgeted = engine.reader.read(seed_article, ["Who is Kim's powerful sister?"],
                                    *engine.reader.sanitize(max_windows=0, min_window_relevance=0.0))[0]
    budgeted = predict(seed_article, "Who is Kim's powerful sister?")
    assert budgeted["answer"] == unbudgeted["answer"]
    assert budgeted["windows"] < unbudgeted["windows"] == budgeted["windows_in_article"]


def test_the_seed_as_a_web_page_and_as_a_pdf_answers_as_the_plain_text(seed_article):
    """The seed article served as a news page (navigation, scripts, "Check Also", comment form,
    footer) and set as a PDF: both read back as its body, and the gold questions get the plain
    text's answers but at most one: without the page junk the plain text ends with, the last
    windows fall elsewhere (measured: one span shorter, F1 over the set -0.7)."""
    from eval.sets import load_qa_set
    from eval.squad import f1_score
    from serve.sources import load_article
    from tests.test_sources import make_pdf, seed_page
    items = load_qa_set("seed")
    engine = get_engine("embedded")

    def answers(text):
        qs = [it.question for it in items]
        return [r["answer"] for r in engine.predict_many(text, qs[:40]) + engine.predict_many(text, qs[40:])]
    page = load_article(seed_page().encode())
    pdf = load_article(make_pdf(page.text))
    assert pdf.text == page.text
    plain, from_page = answers(seed_article), answers(page.text)
    differ = [i for i, (a, b) in enumerate(zip(plain, from_page)) if a != b]
    assert len(differ) <= 1, [(items[i].question, plain[i], from_page[i]) for i in differ]
    f1 = [sum(f1_score(a, it.answers) if it.answers else float(a is None) for a, it in zip(got, items)) / len(items)
          for got in (plain, from_page)]
    assert f1[1] >= f1[0] - 0.01, f1
