"""Helpers for the job-system, app and UI tests (import them; this is not a conftest.py).

`synthetic_job` is a real, small job function with the engine's signature: it computes frames (a moving
gradient), reports per-step progress with an x0 latent, honours cancellation, and writes the same files
as `genl.api.run_job`. Prompt words steer it: "crash" kills the worker process, "fail" raises a
ValueError, "slow" makes each step take 0.2 s.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
for p in (str(ROOT), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
SYNTHETIC_JOB = "conftest_app:synthetic_job"


def synthetic_job(settings, out_dir, *, progress=None, is_cancelled=None, models=None) -> dict:
    from PIL import Image

    from genl.api import Cancelled
    from genl.video_io import write_mp4

    words = settings.prompt.lower()
    out_dir = Path(out_dir)
    n, h, w = settings.num_frames, settings.height, settings.width
    gen = torch.Generator().manual_seed(settings.seed)
    latents = torch.randn(1, 4, n, h // 8, w // 8, generator=gen)
    for step in range(1, settings.steps + 1):
        if is_cancelled is not None and is_cancelled():
            raise Cancelled("The job was cancelled.")
        if "crash" in words and step == 2:
            os._exit(3)
        if "fail" in words and step == 2:
            raise ValueError("The synthetic job was asked to fail.")
        latents = latents * 0.9  # the "denoising"
        if "slow" in words:
            time.sleep(0.2)
        if progress is not None:
            progress({"stage": "denoise", "step": step, "total": settings.steps, "x0": latents})
    ys, xs = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(xs + 4 * f) % 256, (ys + 2 * f) % 256, np.full_like(xs, 128)], -1)
                       for f in range(n)]).astype(np.uint8)
    if progress is not None:
        progress({"stage": "decode", "step": n, "total": n, "x0": None})
    out_dir.mkdir(parents=True, exist_ok=True)
    video = write_mp4(frames, out_dir / "video.mp4", fps=settings.fps)
    (out_dir / "settings.json").write_text(json.dumps(settings.to_dict(), indent=2))
    Image.fromarray(frames[0]).save(out_dir / "thumbnail.png")
    return {"video": str(video), "settings": str(out_dir / "settings.json"),
            "thumbnail": str(out_dir / "thumbnail.png"), "frames_dir": None}


def generate_settings(prompt: str = "0-7: a red circle | 8-15: a blue square", **kw):
    from genl.settings import CoDenoiseSettings, GenerateSettings

    cn = kw.pop("codenoise", None) or CoDenoiseSettings(clip_length=8, stride=4)
    base = dict(prompt=prompt, num_frames=16, width=32, height=32, steps=3, fps=8.0, codenoise=cn)
    base.update(kw)
    return GenerateSettings(**base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_models() -> dict:
    """Tiny random-weight SD and AnimateDiff folders, built once per test session."""
    from tiny import cached_tiny_models

    return cached_tiny_models()


class AppServer:
    """The real app (real engine, tiny models) on a free port in this process; one per test session."""

    def __init__(self, root: Path):
        import app as app_module

        self.root = root
        self.models = tiny_models()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        args = app_module.parse_args(["--port", str(self.port), "--outputs", str(root / "outputs"),
                                      "--max-frames", "64", "--max-upload-mb", "5", "--device", "cpu"])
        self.studio, self.demo = app_module.build(args, models=[self.models["animatediff"], self.models["sd"]])
        self.studio.wait_ready(180)
        app_module.launch(self.demo, args, prevent_thread_lock=True)

    def close(self):
        self.demo.close()
        self.studio.close()


_SERVER: dict = {}
_SERVER_LOCK = threading.Lock()


def app_server() -> AppServer:
    """Start the shared app server on first use (the client and browser tests share it)."""
    import atexit
    import tempfile

    with _SERVER_LOCK:
        if "s" not in _SERVER:
            _SERVER["s"] = AppServer(Path(tempfile.mkdtemp(prefix="genl-app-")))
            atexit.register(_SERVER["s"].close)
        return _SERVER["s"]
