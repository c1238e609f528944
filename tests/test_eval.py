"""Evaluation metrics against hand-computed cases, and the eval tool end to end on the tiny profile."""
import json

import pytest

from eval.__main__ import main as eval_main
from eval.metrics import exact_match, f1_score, list_recall, normalize_answer, rouge
from eval.runner import lead3
from eval.sets import load_qa_set, seed_article


@pytest.mark.parametrize("raw,norm", [
    ("The Aurus limo!", "aurus limo"),
    ("  a   tea\tset ", "tea set"),
    ("An “iron-clad” deal", "ironclad deal"),          # official: hyphen is punctuation, removed
    ("theater", "theater"),                              # 'the' only as a whole word
    ("U.S.", "us"),
    ("Kim’s gifts", "kims gifts"),                       # curly apostrophe like the ASCII one
])
def test_official_normalisation(raw, norm):
    assert normalize_answer(raw) == norm


def test_f1_hand_computed():
    # pred tokens: [russian, made, limo] (after normalisation 'russianmade limo' -> 2 tokens)
    assert f1_score("Russian-made limo", ["a Russian-made Aurus limo"]) == pytest.approx(2 * (1 * 2 / 3) / (1 + 2 / 3))
    # repeated tokens count once per occurrence (Counter intersection)
    assert f1_score("tea tea tea", ["tea set"]) == pytest.approx(2 * (1 / 3 * 1 / 2) / (1 / 3 + 1 / 2))
    # best over several gold answers
    assert f1_score("Vietnam", ["for Vietnam", "Vietnam"]) == 1.0
    # an answer made only of articles/punctuation normalises to empty: 0 unless gold is also empty
    assert f1_score("the", ["a"]) == 1.0 and exact_match("the", ["a"]) == 1.0
    assert f1_score("the", ["limo"]) == 0.0


def test_list_recall():
    gold = [["a tea set", "tea set"], ["artworks depicting the Russian leader", "artworks"], ["a naval officer’s dagger"]]
    assert list_recall(["tea set", "artworks depicting the Russian leader"], gold) == pytest.approx(2 / 3)
    assert list_recall([], gold) == 0.0
    # one span listing several items finds each of them; a near miss inside a word does not
    fields = [["political"], ["trade"], ["investment"], ["science"]]
    assert list_recall(["political, trade, investment, cultural, and humanitarian fields"], fields) == 0.75
    assert list_recall(["tradeoffs"], [["trade"]]) == 0.0


def test_rouge_identical_and_disjoint():
    assert rouge("The cat sat.", "The cat sat.")["rouge1"] == pytest.approx(100)
    assert rouge("Dogs bark loudly.", "The cat sat.")["rouge2"] == 0


def test_seed_gold_set_is_well_formed():
    art = seed_article()
    items = load_qa_set("seed")
    assert len(items) >= 40
    assert sum(i.kind == "none" for i in items) >= 6
    assert sum(i.kind == "list" for i in items) >= 5
    for it in items:
        for a in it.answers:
            assert a in art
        for group in it.list_answers:
            assert all(a in art for a in group)


def test_lead3_skips_headline_and_junk():
    text = lead3(seed_article())
    assert text.startswith("Russian President Vladimir Putin")
    assert "Check Also" not in text


def test_eval_tool_end_to_end_on_tiny(tiny_profile, tmp_path, capsys):
    assert eval_main(["--profile", tiny_profile, "--set", "seed", "--limit", "12", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    (prof_rows,) = rows.values()
    assert len(prof_rows) == 12
    for r in prof_rows:
        assert {"id", "question", "prediction", "answers", "em", "f1", "score", "seconds"} <= set(r)
        assert r["error"] is None
        assert 0 <= r["f1"] <= 1
    assert (tmp_path / "chart.png").stat().st_size > 1000
    assert "| em |" in (tmp_path / "summary.md").read_text()
    assert "f1" in capsys.readouterr().out


def test_eval_every_takes_a_sample_across_the_set(tiny_profile, tmp_path, capsys):
    from eval.sets import load_qa_set
    ids = [it.id for it in load_qa_set("seed")]
    assert eval_main(["--profile", tiny_profile, "--set", "seed", "--every", "10", "--limit", "4",
                      "--out", str(tmp_path)]) == 0
    (prof_rows,) = json.loads((tmp_path / "rows.json").read_text()).values()
    assert [r["id"] for r in prof_rows] == ids[::10][:4]
    assert eval_main(["--profile", tiny_profile, "--set", "seed", "--every", "0", "--out", str(tmp_path)]) == 2
    assert "--every" in capsys.readouterr().err


def test_eval_with_scores_a_variant_of_the_profile(tiny_profile, tmp_path, capsys):
    """``--with`` changes a setting as if the YAML said it (checked like the file): here the
    windows read per question, which the rows report."""
    args = ["--profile", tiny_profile, "--set", "seed", "--limit", "3"]
    assert eval_main(args + ["--out", str(tmp_path / "a")]) == 0
    assert eval_main(args + ["--with", "qa.max_windows=1", "--with", "qa.doc_stride=16",
                             "--out", str(tmp_path / "b")]) == 0
    (plain,) = json.loads((tmp_path / "a" / "rows.json").read_text()).values()
    (variant,) = json.loads((tmp_path / "b" / "rows.json").read_text()).values()
    assert [r["windows"] for r in variant] == [1, 1, 1] and all(r["windows"] > 1 for r in plain)
    assert eval_main(args + ["--with", "qa.max_windows", "--out", str(tmp_path / "c")]) == 2
    assert eval_main(args + ["--with", "qa.no_such_setting=1", "--out", str(tmp_path / "c")]) == 2
    assert "no_such_setting" in capsys.readouterr().err


def test_eval_tool_unknown_set(tmp_path, capsys):
    assert eval_main(["--set", "no-such-set", "--out", str(tmp_path)]) == 2
    assert "Unknown set" in capsys.readouterr().err


def test_whole_articles_join_each_titles_paragraphs_in_order():
    from eval.sets import whole_articles
    from eval.squad import QAExample
    exs = [QAExample("1", "A", "First para.", "q1?", ["First"], [0]),
           QAExample("2", "B", "Other article.", "q2?", ["Other"], [0]),
           QAExample("3", "A", "Second para.", "q3?", ["Second"], [0]),
           QAExample("4", "A", "First para.", "q4?", ["para"], [6])]
    items = whole_articles(exs)
    assert [i.id for i in items] == ["1", "2", "3", "4"]
    assert items[0].context == items[2].context == items[3].context == "First para.\n\nSecond para."
    assert items[1].context == "Other article."
    assert all(i.answers[0] in i.context for i in items)


def test_join_articles_moves_answer_offsets():
    from eval.squad import QAExample, join_articles
    exs = [QAExample("1", "A", "First para.", "q1?", ["First"], [0]),
           QAExample("3", "A", "Second para.", "q3?", ["para", "Second para"], [7, 0])]
    for e in join_articles(exs):
        for text, start in zip(e.answers, e.answer_starts):
            assert e.context[start:start + len(text)] == text


def test_long_articles_place_each_article_among_others_with_offsets_moved():
    from eval.squad import QAExample, long_articles
    exs = [QAExample(f"{t}{i}", t, f"{t} paragraph {i} says {t.lower()}{i} " + "word " * 30, f"q {t}{i}?",
                     [f"{t.lower()}{i}"], [len(f"{t} paragraph {i} says ")])
           for t in "ABCDEFGH" for i in range(2)]
    docs = long_articles(exs, words=100, seed=0)
    assert [d.id for d in docs] == [e.id for e in exs]
    for d in docs:
        for text, start in zip(d.answers, d.answer_starts):
            assert d.context[start:start + len(text)] == text
        assert 100 <= len(d.context.split()) < 100 + 2 * 36        # stops once past ``words``
        assert f"{d.title} paragraph 0" in d.context and f"{d.title} paragraph 1" in d.context
        assert len({t for t in "ABCDEFGH" if f"{t} paragraph 0" in d.context}) >= 2   # others around it
    by_title = {d.title: d.context for d in docs}
    assert all(d.context == by_title[d.title] for d in docs)         # one document per title
    assert len(set(by_title.values())) > len(by_title) // 2          # drawn per title
    assert [d.context for d in long_articles(exs, words=100, seed=0)] == [d.context for d in docs]
    assert [d.context for d in long_articles(exs, words=100, seed=1)] != [d.context for d in docs]
    # the article is not always first: positions differ across titles
    assert len({d.context.index(f"{d.title} paragraph 0") > 0 for d in docs}) == 2


def test_swapped_set_asks_the_questions_whose_names_can_change(tmp_path, monkeypatch, seed_article):
    """``xquad-swapped``: each question whose names can be swapped, asked of its paragraph with
    them swapped, expected "not in the article"; a question without names is left out."""
    para = next(p for p in seed_article.split("\n\n") if "Aurus limo" in p)
    ans = "a Russian-made Aurus limo"
    qas = [{"id": "a", "question": "What did Putin give Kim?", "answers": [{"text": ans, "answer_start": para.index(ans)}]},
           {"id": "b", "question": "What was given?", "answers": [{"text": ans, "answer_start": para.index(ans)}]}]
    (tmp_path / "qa" / "xquad-en").mkdir(parents=True)
    (tmp_path / "qa" / "xquad-en" / "xquad.en.json").write_text(
        json.dumps({"data": [{"title": "t", "paragraphs": [{"context": para, "qas": qas}]}]}))
    monkeypatch.setenv("ARTICLE_QA_DATA", str(tmp_path))
    items = load_qa_set("xquad-swapped")
    assert [(it.question, it.kind, it.answers, it.context) for it in items] == [
        ("What did Kim give Putin?", "none", [], para)]


def test_foreign_set_asks_each_question_of_another_whole_article(tmp_path, monkeypatch):
    """``xquad-foreign``: every question asked of the whole article of another title, expected
    "not in the article"."""
    data = []
    for t in ("alpha", "beta", "gamma"):
        paras = [f"{t} paragraph {i} says {t} was founded in 19{i}0." for i in range(2)]
        data.append({"title": t, "paragraphs": [
            {"context": p, "qas": [{"id": f"{t}{i}", "question": f"When was {t} founded?",
                                    "answers": [{"text": f"19{i}0", "answer_start": p.index(f"19{i}0")}]}]}
            for i, p in enumerate(paras)]})
    (tmp_path / "qa" / "xquad-en").mkdir(parents=True)
    (tmp_path / "qa" / "xquad-en" / "xquad.en.json").write_text(json.dumps({"data": data}))
    monkeypatch.setenv("ARTICLE_QA_DATA", str(tmp_path))
    items = load_qa_set("xquad-foreign")
    assert len(items) == 6
    for it in items:
        asked_of = it.question.split()[2]
        assert it.kind == "none" and it.answers == []
        assert asked_of not in it.context, "another title's article"
        title = it.context.split()[0]
        assert it.context == f"{title} paragraph 0 says {title} was founded in 1900.\n\n" \
                             f"{title} paragraph 1 says {title} was founded in 1910.", "the whole article"


def test_extraction_metric_on_known_cases():
    """The article-extraction benchmark's shingle metric: exact text 1/1/1; half the text found,
    nothing extra: precision 1, recall about a half; page-normalised means."""
    from eval.extraction import scores, shingle_counts
    true = "one two three four five six seven eight nine ten"
    assert shingle_counts(true, true) == (1.0, 0.0, 0.0)
    tp, fp, fn = shingle_counts(true, "one two three four five six")
    assert fp == 0 and tp == pytest.approx(3 / 7) and fn == pytest.approx(4 / 7)
    assert scores([(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert shingle_counts("", "") == (0.0, 0.0, 0.0)
