"""The role check: does a candidate span answer the question with the roles as the question puts
them ("What did Kim give Putin?" is not answered by the limo of "Putin gave Kim a limo")?

A span reader matches the question's words around a span and is blind to who does what to whom.
The check is a small head over the reader's own hidden states (the question-aware [CLS] state and
the span's first, last and mean token states, from the forward pass already made), trained by
``training.train_role_check`` on pairs built from the reader's training paragraphs: a question
with its gold span (right) and the same question with its names swapped or replaced
(``training.squad.swap_names``) with the same span (wrong). It is saved beside the reader's
weights as ``role_check.safetensors`` with ``role_check.json``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS_FILE = "role_check.safetensors"
CONFIG_FILE = "role_check.json"


@dataclass(frozen=True)
class RoleCheckConfig:
    hidden_size: int
    width: int = 256
    weight: float = 1.0        # candidates are scored x P(roles match) ** weight
    refuse_below: float = 0.0  # the best candidate's P(roles match) under this: "not in the article"


def span_state(hidden: np.ndarray, first: int, last: int) -> np.ndarray:
    """(4 x hidden,) what the check reads of a span from tokens ``first``..``last`` of a window
    whose hidden states are ``hidden`` (tokens, hidden): [CLS], first, last and mean states."""
    return np.concatenate([hidden[0], hidden[first], hidden[last], hidden[first:last + 1].mean(0)])


class RoleCheck(nn.Module):
    """(batch, 4 x hidden) span states -> (batch,) logits of P(the roles match)."""

    def __init__(self, config: RoleCheckConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.LayerNorm(4 * config.hidden_size), nn.Linear(4 * config.hidden_size, config.width),
                                 nn.GELU(), nn.Linear(config.width, 1))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.net(states.float())[:, 0]

    def probs(self, states: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.sigmoid(self(torch.from_numpy(np.asarray(states, dtype=np.float32)))).numpy()

    def save(self, folder: Path, about: dict | None = None) -> None:
        from safetensors.torch import save_file
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in self.state_dict().items()},
                  str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps({"config": asdict(self.config), **(about or {})}, indent=1) + "\n",
                                          encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> "RoleCheck | None":
        folder = Path(folder)
        if not (folder / WEIGHTS_FILE).is_file():
            return None
        from safetensors.torch import load_file
        config = RoleCheckConfig(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["config"])
        head = cls(config)
        head.load_state_dict({k: v.float() for k, v in load_file(str(folder / WEIGHTS_FILE)).items()})
        return head.eval()


def token_range(offsets: np.ndarray, context_mask: np.ndarray, start: int, end: int) -> tuple[int, int] | None:
    """The first and last article tokens of a window overlapping characters [start, end), or None."""
    hit = np.flatnonzero(context_mask & (offsets[:, 0] < end) & (offsets[:, 1] > start))
    return (int(hit[0]), int(hit[-1])) if len(hit) else None
