"""``python -m serve download --profile hub``: fetch a profile's hub models ahead of time."""
from __future__ import annotations

from pathlib import Path

from models.loading import hub_reachable
from models.profiles import load_profile


def download_profile(profile: str) -> int:
    """Download every hub model a profile names (local folders and packages are skipped).
    Returns a process exit code; says plainly when the hub cannot be reached."""
    prof = load_profile(profile)
    refs = [r for r in (prof.qa.model, prof.qa.sentence_encoder, prof.summarizer.model) if r]
    hub_ids = [prof.resolve_model(r) for r in refs if not Path(prof.resolve_model(r)).is_dir()]
    if not hub_ids:
        print(f"Profile {prof.name!r} needs no download: its models are local.")
        return 0
    if not hub_reachable():
        print("Cannot reach the Hugging Face hub (offline, or HF_HUB_OFFLINE=1), so nothing was "
              f"downloaded. Needed: {', '.join(hub_ids)}.")
        return 1
    from huggingface_hub import snapshot_download
    for repo in hub_ids:
        print(f"Downloading {repo} ...")
        # the weights as safetensors, never pickles; tqdm progress bars come from huggingface_hub
        path = snapshot_download(repo, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model",
                                                       "merges.txt", "vocab.*", "*.py.none"])
        print(f"  -> {path}")
    return 0
