"""Tuned weights on disk, one folder per (video, model, settings), listed for the studio and the CLI.

The key hashes the video's content hash, the model and every setting that changes the weights, so tuning
the same video twice with the same settings resumes (or reuses) one folder, and many edits share it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .settings import TuneSettings
from .weights import META_FILE, WEIGHTS_FILE


def tuning_key(video_hash: str, settings: TuneSettings) -> str:
    blob = json.dumps({"video": video_hash, "settings": settings.weights_key()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class TuningStore:
    """Folder of tunings: <root>/<key>/{weights.safetensors, tuning.json, checkpoint.pt}."""

    def __init__(self, root):
        self.root = Path(root)

    def folder(self, video_hash: str, settings: TuneSettings) -> Path:
        return self.root / tuning_key(video_hash, settings)

    def list(self) -> list[dict]:
        """Every usable tuning, newest first: key, folder, video, model, prompt, steps, finished, last loss."""
        out = []
        if not self.root.exists():
            return out
        for meta_path in self.root.glob(f"*/{META_FILE}"):
            folder = meta_path.parent
            if not (folder / WEIGHTS_FILE).exists():
                continue
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue  # a folder being written by another job
            s = meta.get("settings", {})
            losses = meta.get("losses") or [None]
            out.append({"key": folder.name, "folder": str(folder), "video": s.get("video", ""),
                        "model": s.get("model", ""), "prompt": s.get("prompt", ""), "method": s.get("method", ""),
                        "step": meta.get("step", 0), "total": meta.get("total", 0),
                        "finished": bool(meta.get("finished")), "loss": losses[-1],
                        "modified": meta_path.stat().st_mtime})
        return sorted(out, key=lambda e: e["modified"], reverse=True)


def resolve_tuning(name: str, store_dir=None) -> Path:
    """A tuning folder from what a person gives: a folder path, or a key (folder name) in `store_dir`."""
    from .settings import DEFAULT_STORE

    given = Path(str(name or ""))
    for folder in (given, Path(store_dir or DEFAULT_STORE) / given.name):
        if str(name) and (folder / META_FILE).is_file() and (folder / WEIGHTS_FILE).is_file():
            return folder
    raise ValueError(f"No tuning called '{name}' was found. Tune on a video first (the 'Tune on a video' tab "
                     "or `python -m genl tune`), then pick it from the list of saved tunings.")
