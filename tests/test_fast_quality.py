"""Quality floors for the fast profile's reader (models/minilm_qa, MiniLM fine-tuned in this
project, read in 224-token windows, the 2 best BM25 windows per question, with the sentence prior): real thresholds that
fail when answers get worse. Measured values are in its model card; floors sit a little below."""
from pathlib import Path

import pytest

from eval.runner import run_qa, summarize_qa
from eval.sets import load_qa_set
from serve.api import get_engine, predict

SAMPLE = Path(__file__).resolve().parent / "data" / "xquad_en_sample.json"
SEED_F1_FLOOR = 65.0          # measured 69.26 (recipe sn1, calibrated no-answer decision, with and without the sentence prior; 71.08 with the margin threshold)
XQUAD_SAMPLE_F1_FLOOR = 62.0   # measured 66.39 on these 200 development questions


@pytest.fixture(scope="module")
def engine():
    e = get_engine("fast")
    e.warm_up(qa=True, summarizer=False)
    return e


def test_gift_question_is_answered_with_a_gift(engine, seed_article):
    r = predict(seed_article, "What gifts were exchanged?", profile="fast")
    assert r["answer"] is not None and "Aurus" in r["answer"], r["answer"]   # "Kim a Russian-made Aurus" at 224-token windows


def test_not_in_the_article(engine, seed_article):
    assert predict(seed_article, "Who won the 2022 World Cup?", profile="fast")["answer"] is None


def test_seed_gold_set_floor(engine):
    totals = summarize_qa(run_qa(engine, load_qa_set("seed")))
    assert totals["errors"] == 0
    assert totals["f1"] >= SEED_F1_FLOOR, totals


def test_xquad_fixed_sample_floor(engine):
    totals = summarize_qa(run_qa(engine, load_qa_set(str(SAMPLE))))
    assert totals["f1"] >= XQUAD_SAMPLE_F1_FLOOR, totals
