"""The list tagger: which spans of the article a question asks for, as many as it asks for.

A span reader scores one (start, end) pair at a time, so a list question ("What gifts were
exchanged?") gets its best item and the others fall among the candidates. The tagger is a small
head over the reader's own last hidden states that labels every article token O (outside), B
(begins an item) or I (inside one), as MultiSpanQA's taggers do; it runs in the reader's forward
pass (no second encoder pass). It may also carry its own copy of the reader's top
``encoder_layers`` layers with a low-rank (LoRA) update trained for tagging (``TaggerLayers``):
it then reads the reader's states from below those layers and runs them itself (those layers
again, not the whole encoder), so the span reader's answers stay as they are. It is trained by
``training.train_list_tagger`` and saved beside the reader's weights as
``list_tagger.safetensors`` (the head and the low-rank updates) with its settings in
``list_tagger.json``.

Besides the head (``ListTagger``), the functions here are pure numpy: labels for training
(``token_labels``), items from tag probabilities (``decode_tagged_spans``, ``merge_tagged_spans``,
``list_or_best``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.text import whole_word_span

TAGS = ("O", "B", "I")
WEIGHTS_FILE = "list_tagger.safetensors"
CONFIG_FILE = "list_tagger.json"


@dataclass(frozen=True)
class TaggerConfig:
    hidden_size: int
    width: int = 128              # channels of the convolutions
    kernel: int = 5               # tokens the first convolution reads around each token
    item_weight: float = 1.0      # training loss weight of B and I against O
    threshold: float = 0.5        # a token is inside an item when P(B) + P(I) reaches this
    list_min: float = 0.0         # a list answer needs two items scoring at least this (list_or_best)
    encoder_layers: int = 0       # the reader's top layers the tagger runs again with its own update (TaggerLayers)
    lora_rank: int = 16
    lora_alpha: float = 32.0


def reader_features(start_logits: torch.Tensor, end_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, 3): what the span reader already says of each token, over the window's
    article tokens (``mask``): log P(a span starts here), log P(one ends here), and log P(the
    token is inside the answer span), i.e. P(start at or before it) x P(end at or after it)."""
    neg = torch.finfo(torch.float32).min / 4
    s = torch.log_softmax(start_logits.float().masked_fill(~mask, neg), -1)
    e = torch.log_softmax(end_logits.float().masked_fill(~mask, neg), -1)
    before = torch.logcumsumexp(s, -1)
    after = torch.flip(torch.logcumsumexp(torch.flip(e, [-1]), -1), [-1])
    feats = torch.stack([s, e, before + after], -1).clamp(min=-30.0)
    return feats * mask[..., None]


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update ``B @ A`` (scaled by alpha / rank);
    ``merged()`` folds the update into a plain ``nn.Linear`` for inference."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.randn(rank, base.in_features) / base.in_features ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        for p in self.base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T.to(x.dtype)) @ self.lora_B.T.to(x.dtype) * self.scale

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight += (self.lora_B @ self.lora_A * self.scale).to(self.base.weight.dtype)
        return self.base


# the linear layers of an MPNet (or BERT) block that get a low-rank update
_LORA_TARGETS = ("q", "k", "v", "o", "query", "key", "value", "dense")


class TaggerLayers(nn.Module):
    """The tagger's own copy of the reader's top encoder layers, each linear layer with a LoRA
    update (``LoRALinear``), over the reader's states from below them. Starting from the reader's
    weights with a zero update, the tagger first sees exactly the reader's last states.

    Only MPNet's encoder is supported (its relative position bias is copied with the layers)."""

    def __init__(self, encoder: nn.Module, count: int, rank: int, alpha: float):
        super().__init__()
        import copy
        if not hasattr(encoder, "compute_position_bias"):
            raise ValueError("tagger encoder layers need an MPNet encoder")
        self.position = copy.deepcopy(encoder.relative_attention_bias).requires_grad_(False)
        self.bucket = encoder.relative_position_bucket
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in encoder.layer[-count:])
        self.layers.requires_grad_(False)
        self._swap_linears(lambda name, sub: LoRALinear(sub, rank, alpha)
                           if isinstance(sub, nn.Linear) and name in _LORA_TARGETS else None)

    def _swap_linears(self, swap) -> None:
        """Replace each submodule of the layers for which ``swap(name, module)`` gives a module."""
        for layer in self.layers:
            for module in list(layer.modules()):
                for child, sub in list(module.named_children()):
                    if (new := swap(child, sub)) is not None:
                        setattr(module, child, new)

    def position_bias(self, hidden: torch.Tensor) -> torch.Tensor:
        n = hidden.shape[1]
        pos = torch.arange(n, device=hidden.device)
        bias = self.position(self.bucket(pos[None, :] - pos[:, None]))     # (n, n, heads)
        return bias.permute(2, 0, 1)[None].to(hidden.dtype)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, hidden) states from below the copied layers and the windows' 0/1
        ``attention_mask`` -> the states after them."""
        additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        bias = self.position_bias(hidden)
        for layer in self.layers:
            hidden = layer(hidden, additive, bias)[0]
        return hidden

    def lora_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if ".lora_" in k}

    def merge(self) -> None:
        """Fold every update into its linear layer: inference then costs the plain layers."""
        self._swap_linears(lambda name, sub: sub.merged() if isinstance(sub, LoRALinear) else None)


class ListTagger(nn.Module):
    """Encoder states and the reader's start/end logits of a window's article tokens -> (batch,
    tokens, 3) logits over ``TAGS``: the states projected down, beside ``reader_features``, read by
    two convolutions along the tokens (an item's extent depends on its neighbours)."""

    def __init__(self, config: TaggerConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.layers = (TaggerLayers(encoder, config.encoder_layers, config.lora_rank, config.lora_alpha)
                       if config.encoder_layers else None)
        self.project = nn.Linear(config.hidden_size, config.width)
        self.conv = nn.Conv1d(config.width + 3, config.width, config.kernel, padding=config.kernel // 2)
        self.out = nn.Conv1d(config.width, 3, 3, padding=1)

    def forward(self, hidden: torch.Tensor, start_logits: torch.Tensor, end_logits: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.project(hidden.float()), reader_features(start_logits, end_logits, mask)], -1)
        x = x * mask[..., None]
        x = nn.functional.gelu(self.conv(x.transpose(1, 2)))
        return self.out(x).transpose(1, 2)

    def tag_probs(self, hidden: np.ndarray, start_logits: np.ndarray, end_logits: np.ndarray) -> np.ndarray:
        """(tokens, 3) tag probabilities of one window's article tokens."""
        with torch.inference_mode():
            h = torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32))[None]
            mask = torch.ones(1, h.shape[1], dtype=torch.bool)
            logits = self(h, torch.from_numpy(start_logits.astype(np.float32))[None],
                          torch.from_numpy(end_logits.astype(np.float32))[None], mask)
            return torch.softmax(logits[0], -1).numpy()

    def save(self, folder: Path, about: dict | None = None) -> None:
        from safetensors.torch import save_file
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v for k, v in self.state_dict().items() if not k.startswith("layers.")}
        if self.layers is not None:
            tensors.update({"layers." + k: v for k, v in self.layers.lora_state().items()})
        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in tensors.items()},
                  str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps({"config": asdict(self.config), **(about or {})}, indent=1) + "\n",
                                          encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path, encoder: nn.Module | None = None) -> "ListTagger | None":
        """The tagger saved in ``folder``, or None when there is none. A tagger with encoder
        layers copies them from ``encoder`` (the reader's, whose top layers it was trained
        over), adds its update and merges it; it then runs in the encoder's dtype."""
        folder = Path(folder)
        if not (folder / WEIGHTS_FILE).is_file():
            return None
        from safetensors.torch import load_file
        config = TaggerConfig(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["config"])
        if config.encoder_layers and encoder is None:
            raise ValueError(f"the list tagger in {folder} runs {config.encoder_layers} of the reader's encoder "
                             "layers: load it with the reader's encoder")
        tagger = cls(config, encoder)
        saved = load_file(str(folder / WEIGHTS_FILE))
        missing, unexpected = tagger.load_state_dict({k: v.float() for k, v in saved.items()}, strict=False)
        missing = [k for k in missing if not k.startswith("layers.") or ".lora_" in k]
        if missing or unexpected:
            raise ValueError(f"the list tagger in {folder} does not match its {CONFIG_FILE}: "
                             f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        if tagger.layers is not None:
            tagger.layers.merge()
        return tagger.eval()

    def encode(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The states the head reads: the reader's last states when the tagger has no layers of
        its own (``hidden`` is then returned as is), else its layers run over ``hidden``."""
        return hidden if self.layers is None else self.layers(hidden, attention_mask)


def token_labels(offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Tags (indices into ``TAGS``) of tokens with character ``offsets`` (n, 2) for the gold
    character ``spans``: the first token overlapping a span is B, the others I, the rest O."""
    labels = np.zeros(len(offsets), dtype=np.int64)
    for start, end in spans:
        inside = np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start))
        if len(inside):
            labels[inside[0]] = 1
            labels[inside[1:]] = 2
    return labels


def decode_tagged_spans(probs: np.ndarray, offsets: np.ndarray, text: str, threshold: float
                        ) -> list[tuple[int, int, float]]:
    """Character spans (start, end, score) of the items tagged in one window.

    ``probs``: (n, 3) tag probabilities of the window's article tokens; ``offsets``: their (n, 2)
    character offsets. A token is inside an item when P(B) + P(I) >= ``threshold``; a run of such
    tokens is one item, split again where a token is more likely B than I (two items side by
    side). An item's score is the mean inside-probability of its tokens; spans are widened to
    whole words."""
    inside = probs[:, 1] + probs[:, 2]
    out: list[tuple[int, int, float]] = []
    first = None
    for i in range(len(probs) + 1):
        is_in = i < len(probs) and inside[i] >= threshold
        begins = is_in and first is not None and probs[i, 1] > probs[i, 2]
        if first is not None and (not is_in or begins):
            start, end = whole_word_span(text, int(offsets[first, 0]), int(offsets[i - 1, 1]))
            if end > start and any(ch.isalnum() for ch in text[start:end]):
                out.append((start, end, float(inside[first:i].mean())))
            first = None
        if is_in and first is None:
            first = i
    return out


def merge_tagged_spans(spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Items tagged by overlapping windows as one list: the same span keeps its best score, a span
    overlapping a better-scored one is dropped; article order."""
    best: dict[tuple[int, int], float] = {}
    for s, e, p in spans:
        best[(s, e)] = max(p, best.get((s, e), 0.0))
    kept: list[tuple[int, int, float]] = []
    for (s, e), p in sorted(best.items(), key=lambda kv: -kv[1]):
        if not any(s < ke and ks < e for ks, ke, _ in kept):
            kept.append((s, e, p))
    return sorted(kept)


def list_or_best(items: list[tuple[int, int, float]], list_min: float) -> list[tuple[int, int, float]]:
    """The items as a list answer when at least two score ``list_min`` or more (then those that
    do), else the best item alone: a single-answer question whose tagger also marks a doubtful
    second span is still answered with one."""
    sure = [it for it in items if it[2] >= list_min]
    if len(sure) >= 2:
        return sure
    return [max(items, key=lambda it: it[2])] if items else []
