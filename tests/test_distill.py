"""Distillation: the teacher's logits carried to the student's tokens by characters, and the loss."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.distill import NO_TARGET, Teacher, carry_logits, distill_loss, teacher_windows, window_chars

SAMPLE = "tests/data/xquad_en_sample.json"


def test_window_chars_widens_to_whole_words():
    context = "The unplayable game ended."
    # a window whose article tokens run from inside "unplayable" to inside "ended"
    offsets = np.array([[0, 0], [6, 10], [15, 19], [21, 24], [0, 0]])
    mask = np.array([False, True, True, True, False])
    assert window_chars(offsets, mask, context) == (4, 26)
    assert window_chars(offsets, np.zeros(5, dtype=bool), context) == (0, 0)


def test_carry_logits_matches_tokens_by_their_characters():
    # student: [CLS] q [SEP] play ##ing now [SEP]; teacher: <s> q </s></s> playing now </s>
    s_off = np.array([[0, 0], [0, 0], [0, 0], [0, 4], [4, 7], [8, 11], [0, 0]])
    s_mask = np.array([0, 0, 0, 1, 1, 1, 0], dtype=bool)
    t_off = np.array([[0, 0], [0, 0], [0, 0], [0, 0], [0, 7], [8, 11], [0, 0]])
    t_mask = np.array([0, 0, 0, 0, 1, 1, 0], dtype=bool)
    t_start = np.array([5.0, 0, 0, 0, 2.0, 3.0, 0])
    t_end = np.array([6.0, 0, 0, 0, 4.0, 1.0, 0])
    start, end = carry_logits(s_off, s_mask, t_off, t_mask, t_start, t_end)
    assert start[0] == 5.0 and end[0] == 6.0                       # [CLS]: no answer
    assert start[3] == 2.0 and start[4] == NO_TARGET              # "playing" starts at "play"
    assert end[3] == NO_TARGET and end[4] == 4.0                  # ... and ends at "##ing"
    assert start[5] == 3.0 and end[5] == 1.0
    assert np.all(start[[1, 2, 6]] == NO_TARGET) and np.all(end[[1, 2, 6]] == NO_TARGET)


def test_distill_loss_is_zero_on_the_teachers_distribution_only_where_it_has_targets():
    teacher = torch.tensor([[1.0, 2.0, NO_TARGET, 0.5]])
    same = torch.tensor([[1.0, 2.0, 9.0, 0.5]])        # differs only where the teacher has no target
    other = torch.tensor([[2.0, 0.0, 9.0, 0.5]])
    assert distill_loss(same, same, teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_loss(other, other, teacher, teacher).item() > 0.1
    # shifting every logit leaves the distribution, so the loss, unchanged
    assert distill_loss(same + 3, same - 1, teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    both = torch.cat([same, other])
    t2 = torch.cat([teacher, teacher])
    only_first = distill_loss(both, both, t2, t2, weight=torch.tensor([1.0, 0.0]))
    assert only_first.item() == pytest.approx(0.0, abs=1e-6), "a window of weight 0 does not count"
    s = other.clone().requires_grad_(True)
    distill_loss(s, s, teacher, teacher).backward()
    assert s.grad[0, 2] == 0 and s.grad[0, :2].abs().sum() > 0


def test_teacher_reads_the_student_windows_characters(tiny_profile, tiny_mpnet):
    """A tiny MPNet teacher (its own special tokens) over a tiny BERT student's windows: each
    teacher window covers its student window's article characters, and every student article
    token gets the teacher's logit of the token that starts (ends) at its character."""
    from transformers import AutoTokenizer

    from eval.squad import read_squad
    from models.profiles import load_profile
    from training.train_qa import build_features
    prof = load_profile(tiny_profile)
    student_tok = AutoTokenizer.from_pretrained(prof.resolve_model(prof.qa.model))
    feats = build_features(read_squad(SAMPLE)[:12], student_tok, 96, 24, 1.0, 0.0, 0, "majority", 1)
    rows = list(range(min(8, len(feats.windows))))
    teacher = Teacher(str(tiny_mpnet))
    teacher.warm_up()
    tw = teacher_windows(teacher.tokenizer, feats.windows, rows, feats.questions, feats.contexts)
    assert tw.input_ids[0][0] == teacher.tokenizer.bos_token_id != student_tok.cls_token_id
    for r, w in enumerate(rows):
        s_off = feats.windows.offsets[w][feats.windows.context_mask[w]]
        t_off = tw.offsets[r][tw.context_mask[r]]
        assert t_off[0, 0] <= s_off[0, 0] and t_off[-1, 1] >= s_off[-1, 1]
        context = feats.contexts[int(feats.windows.sample[w])]
        # widened to whole words: the teacher starts after a space, ends before one
        assert t_off[0, 0] == 0 or context[t_off[0, 0] - 1].isspace()
        assert t_off[-1, 1] == len(context) or context[t_off[-1, 1]].isspace()
    width = max(len(feats.windows.input_ids[w]) for w in rows)
    start, end = teacher.targets(feats.windows, rows, feats.questions, feats.contexts, width)
    assert start.shape == end.shape == (len(rows), width)
    for r, w in enumerate(rows):
        n = len(feats.windows.input_ids[w])
        mask = feats.windows.context_mask[w]
        # the same uncased WordPiece vocabulary: every article token has its counterpart
        assert torch.isfinite(start[r, :n][torch.from_numpy(mask)]).all()
        assert torch.isfinite(end[r, :n][torch.from_numpy(mask)]).all()
        assert torch.isfinite(start[r, 0]) and not torch.isfinite(start[r, n:]).any()


@pytest.mark.parametrize("flag,value", [("--distill-weight", "1.5"), ("--distill-weight", "-0.1"),
                                        ("--temperature", "0")])
def test_distillation_settings_out_of_range_are_refused(flag, value, capsys):
    from training.train_qa import parse_args
    with pytest.raises(SystemExit):
        parse_args(["--train", SAMPLE, "--out", "x", "--teacher", "t", flag, value])
    assert flag in capsys.readouterr().err


@pytest.mark.slow     # trains: `make test` runs it, `make check` does not
def test_training_with_a_teacher_runs_resumes_and_learns_from_it(tmp_path, tiny_profile, tiny_mpnet):
    from safetensors.numpy import load_file

    from models.profiles import load_profile
    from training.train_qa import main
    base = load_profile(tiny_profile).resolve_model(load_profile(tiny_profile).qa.model)
    args = ["--train", SAMPLE, "--base", base, "--distractors", "1", "--batch-size", "8",
            "--max-seq-len", "96", "--doc-stride", "24", "--limit", "40", "--checkpoint-every", "2",
            "--lr", "1e-3", "--threads", "1", "--precision", "fp32"]
    taught = args + ["--out", str(tmp_path / "taught"), "--teacher", str(tiny_mpnet), "--distill-weight", "0.9"]
    main(taught + ["--max-steps", "2"])
    main(taught + ["--max-steps", "3", "--resume"])
    assert torch.load(tmp_path / "taught" / "checkpoint" / "state.pt", weights_only=True)["step"] == 3
    main(args + ["--out", str(tmp_path / "plain"), "--max-steps", "3"])
    key = "qa_outputs.weight"
    with_teacher = load_file(tmp_path / "taught" / "model" / "model.safetensors")[key]
    without = load_file(tmp_path / "plain" / "model" / "model.safetensors")[key]
    assert not np.allclose(with_teacher.astype(np.float32), without.astype(np.float32)), \
        "the teacher's targets change what the student learns"
