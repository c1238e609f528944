"""Quality floors for the shipped embedded QA model (models/minilm_qa): real thresholds that
fail when answers get worse. Measured values are in the model card; floors sit a little below."""
from pathlib import Path

import pytest

from eval.runner import run_qa, summarize_qa
from eval.sets import load_qa_set
from serve.api import get_engine, predict

SAMPLE = Path(__file__).resolve().parent / "data" / "xquad_en_sample.json"
SEED_F1_FLOOR = 70.0        # measured 74.72 (recipe sn1 with its settings; r3 69.86 with its priors, 55.06 without)
XQUAD_SAMPLE_F1_FLOOR = 63.0   # measured 66.64 on these 200 questions (recipe sn1; r3 66.56 with the priors, 65.31 without; r1 61.0)


@pytest.fixture(scope="module")
def engine():
    e = get_engine("embedded")
    e.warm_up(qa=True, summarizer=False)
    return e


@pytest.mark.xfail(strict=True, reason="recipe sn1 answers 'a grand welcome' (from 'Kim gave him a grand welcome'); "
                                       "the limo is its third candidate (issue 3: blocked on a stronger model; no recipe so far fixes this)")
def test_putin_gave_kim_the_limo(seed_article):
    r = predict(seed_article, "What did Putin give Kim?")
    assert r["answer"] is not None and "Aurus limo" in r["answer"]


def test_limo_is_among_the_candidates(seed_article):  # third of three for recipes r3 and sn1
    r = predict(seed_article, "What did Putin give Kim?", top_k=3)
    assert any("Aurus limo" in a["answer"] for a in r["answers"])
    assert seed_article[r["start"]:r["end"]] == r["answer"]


@pytest.mark.xfail(strict=True, reason="recipe sn1 selects 'Aurus limo and other items' alone "
                                       "(the tea set and dagger score 0.37 of it, under the 0.5 list threshold)")
def test_gift_list_question_names_both_sides(seed_article):
    r = predict(seed_article, "What gifts were exchanged?", top_k=5)
    chosen = " | ".join(a["answer"] for a in r["answers"] if a["selected"])
    assert "limo" in chosen and "artworks" in chosen, chosen


def test_gift_question_is_answered_with_a_gift(seed_article):
    # recipe r3 answered "economic assistance and technology transfers" without the window prior;
    # sn1 (shared normalisation) answers the limo with or without it
    r = predict(seed_article, "What gifts were exchanged?")
    assert r["answer"] is not None and "Aurus limo" in r["answer"], r["answer"]


def test_gifts_are_among_the_candidates(seed_article):
    r = predict(seed_article, "What gifts were exchanged?", top_k=3)
    shown = " | ".join(a["answer"] for a in r["answers"])
    assert "limo" in shown and "dagger" in shown, shown


def test_gifts_of_both_sides_are_among_the_candidates(seed_article):
    # without the window prior recipe r3 ranked "economic assistance and technology transfers"
    # first and Kim's artworks outside its top 5; sn1 ranks them third
    r = predict(seed_article, "What gifts were exchanged?", top_k=5)
    shown = " | ".join(a["answer"] for a in r["answers"])
    assert "limo" in shown and "artworks" in shown, shown


@pytest.mark.parametrize("question", ["How much did the Aurus limo cost?", "Who won the 2022 World Cup?",
                                      "What is the population of Pyongyang?"])
def test_not_in_the_article(seed_article, question):
    assert predict(seed_article, question)["answer"] is None


def test_seed_gold_set_floor(engine):
    totals = summarize_qa(run_qa(engine, load_qa_set("seed")))
    assert totals["errors"] == 0
    assert totals["f1"] >= SEED_F1_FLOOR, totals


def test_xquad_fixed_sample_floor(engine):
    items = load_qa_set(str(SAMPLE))
    totals = summarize_qa(run_qa(engine, items))
    assert totals["f1"] >= XQUAD_SAMPLE_F1_FLOOR, totals
