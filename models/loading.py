"""Loading tokenizers and models from a hub id or a local folder, safely and without hanging.

Always ``use_safetensors=True`` (no pickles) and never ``trust_remote_code``. A hub id that is not
in the local cache is fetched only when the hub answers; offline (``HF_HUB_OFFLINE=1``) or with no
network the load fails at once with a message naming the model and how to get it.
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse


from models.adapters import adapter_base, is_adapter_folder, merge_adapter, resolve_model_ref
from models.packaged_base import PackagedModelError


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names it and says what to do."""


def pick_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is usable, else "cpu"."""
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("runtime.device is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'.")
    return device


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the hub's host accepts a TCP connection within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _how_to_get(name: str) -> str:
    return (f"Model {name!r} is not a local folder and is not in the Hugging Face cache, and the hub "
            "cannot be reached (offline or HF_HUB_OFFLINE=1). On a machine with network run "
            "`python -m serve download --profile <profile>` (or `hf download " + name + "`), "
            "or set the profile's model to a local folder.")


def resolve_local(name: str) -> tuple[str, bool]:
    """(where to load from, whether it is already local). A folder or a cached hub id is local."""
    if Path(name).is_dir():
        return name, True
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(name, local_files_only=True), True
    except Exception:
        return name, False


@contextmanager
def quiet_transformers():
    """Silence transformers' load report (its "MISSING qa_outputs" for a base whose head an
    adapter brings would alarm a user); errors still raise."""
    from transformers.utils import logging as hf_logging
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_pretrained(name: str, kind: str, device: str = "cpu"):
    """Load ``(tokenizer, model)`` for a task.

    Args:
        name: a local folder or a hub id.
        kind: "qa" (AutoModelForQuestionAnswering), "seq2seq" (AutoModelForSeq2SeqLM) or
            "encoder" (AutoModel, for sentence embeddings).
        device: "cpu" or "cuda". Weights stored in float16 are cast to float32 on CPU.
    Raises:
        ModelLoadError: not found, not reachable, no safetensors weights, or not that kind of model.
    """
    import torch
    from transformers import (AutoModel, AutoModelForQuestionAnswering, AutoModelForSeq2SeqLM,
                              AutoTokenizer)

    classes = {"qa": AutoModelForQuestionAnswering, "seq2seq": AutoModelForSeq2SeqLM, "encoder": AutoModel}
    source, local = resolve_local(name)
    if not local and name.startswith(("/", ".", "~", "\\")):
        raise ModelLoadError(f"Model folder {name!r} does not exist.")
    if not local:
        if not hub_reachable():
            raise ModelLoadError(_how_to_get(name))
    kwargs = dict(trust_remote_code=False, local_files_only=local)
    try:
        tok = AutoTokenizer.from_pretrained(source, **kwargs)
        dtype = torch.float32 if device == "cpu" else None
        if local and is_adapter_folder(source):
            # a LoRA adapter: load its base (assembled from packages if need be), merge the update
            base = resolve_model_ref(adapter_base(source))
            with quiet_transformers():   # the base has no span head yet: the adapter brings it
                model = classes[kind].from_pretrained(base, use_safetensors=True, dtype=dtype or "auto",
                                                      trust_remote_code=False, local_files_only=True)
            model = merge_adapter(model, source)
        else:
            model = classes[kind].from_pretrained(source, use_safetensors=True, dtype=dtype or "auto", **kwargs)
    except PackagedModelError as exc:
        raise ModelLoadError(f"Could not assemble the base of {name!r}: {exc}") from None
    except OSError as exc:
        raise ModelLoadError(f"Could not load model {name!r}: {str(exc).splitlines()[0]}") from None
    except (ValueError, KeyError) as exc:
        raise ModelLoadError(f"Model {name!r} cannot be used for {kind}: {str(exc).splitlines()[0]}") from None
    if not getattr(tok, "is_fast", False):
        raise ModelLoadError(f"Model {name!r} has no fast tokenizer; character offsets need one.")
    model.to(device).eval()
    return tok, model
