"""The facade the UI talks to: submit, cancel, delete, re-run, list, watch events, estimate.

It owns the SQLite history, the FIFO of queued job ids and one worker per device, and turns worker events
into history rows and per-job event logs that UI generators poll. No Gradio and no tensors here.
"""
from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterator, Optional, Sequence

from . import events
from .spec import CANCELLED, DONE, FAILED, RUNNING, Job, JobSpec
from .store import JobStore
from .worker import DEFAULT_JOB_FN, ProcessWorker, ThreadWorker

CRASHED = ("The worker process stopped unexpectedly while running this job (exit code {code}). This usually "
           "means it ran out of memory: try fewer frames or a smaller resolution. The worker was restarted.")
KEEP_EVENT_LOGS = 200  # jobs whose live events stay in memory (history rows are kept in SQLite regardless)
_FINAL_STATUS = {"finished": DONE, "failed": FAILED, "cancelled": CANCELLED}


def detect_devices(device: str = "auto") -> list[str]:
    """'auto' -> one entry per CUDA GPU, or ['cpu']; 'cuda' -> all GPUs; or an explicit comma list."""
    if device not in ("auto", "cuda"):
        return [d.strip() for d in device.split(",") if d.strip()]
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        if device == "cuda":
            raise ValueError("--device cuda was asked for but no CUDA GPU is visible.")
        return ["cpu"]
    return [f"cuda:{i}" for i in range(count)]


def _size(size) -> dict:
    return {"width": int(size[0]), "height": int(size[1])} if size else {}


def is_zero_gpu() -> bool:
    import os

    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


class Studio:
    def __init__(self, outputs="outputs", *, devices: Optional[Sequence[str]] = None, job_fn: str = DEFAULT_JOB_FN,
                 max_frames: int = 1024, max_upload_mb: int = 500, preview_interval: float = 1.0,
                 preview_frames: int = 8, tiny_decoder: str = "", threads: Optional[bool] = None,
                 models: Optional[Sequence[str]] = None, start: bool = True):
        self.outputs = Path(outputs).resolve()
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.uploads = self.outputs / "uploads"
        self.max_frames, self.max_upload_mb = int(max_frames), int(max_upload_mb)
        self.configured_models = list(models or [])
        self.store = JobStore(self.outputs / "jobs.sqlite")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._queue: list[str] = []
        self._positions: dict[str, int] = {}
        self._events: dict[str, deque] = {}
        self._seq = 0
        zerogpu = is_zero_gpu()
        self.devices = list(devices) if devices else (["cuda"] if zerogpu else detect_devices())
        options = {"preview_interval": preview_interval, "preview_frames": preview_frames,
                   "tiny_decoder": tiny_decoder, "zerogpu": zerogpu}
        worker_cls = ThreadWorker if (threads if threads is not None else zerogpu) else ProcessWorker
        self.workers = [worker_cls(i, d, job_fn, self._on_event, options) for i, d in enumerate(self.devices)]
        for w in self.workers:
            w.on_crash = self._on_crash
        self._queue = [job.id for job in self.store.recover()]
        if start:
            self.start()

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        for w in self.workers:
            w.start()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.store.close()

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until every worker has loaded (tests, start-up logs)."""
        end = time.monotonic() + timeout
        with self._changed:
            while not all(w.ready for w in self.workers):
                broken = [w.broken for w in self.workers if w.broken]
                if broken:
                    raise RuntimeError(f"A worker could not start: {broken[0]}")
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    # ---- actions --------------------------------------------------------------------------------
    def submit(self, settings) -> Job:
        """Validate and queue a settings object (or its dict). Raises ValueError for bad settings."""
        spec = JobSpec.from_settings(self._prepare(settings))
        return self._enqueue(spec)

    def rerun(self, job_id: str) -> Job:
        """Queue a new job with exactly the settings of `job_id`."""
        return self._enqueue(JobSpec(settings=dict(self._job(job_id).spec.settings)))

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False when it had already ended."""
        with self._lock:
            job = self._job(job_id)
            if job_id in self._queue:
                self._queue.remove(job_id)
                self._record(events.cancelled(job_id, "Cancelled before it started."))
                self._dispatch()
                return True
            if job.status == RUNNING:
                return any(w.cancel(job_id) for w in self.workers)
        return False

    def delete(self, job_id: str) -> None:
        """Forget a job and remove its output folder. A running job must be cancelled first."""
        with self._lock:
            job = self._job(job_id)
            if job.status == RUNNING:
                raise ValueError("This job is still running: cancel it first, then delete it.")
            if job_id in self._queue:
                self._queue.remove(job_id)
            self.store.delete(job_id)
            self._events.pop(job_id, None)
            self._positions.pop(job_id, None)
        folder = (self.outputs / job_id).resolve()
        if folder.parent == self.outputs and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)

    # ---- reading --------------------------------------------------------------------------------
    def get(self, job_id: str) -> Optional[Job]:
        return self.store.get(job_id)

    def list(self, limit: int = 100) -> list[Job]:
        return self.store.list(limit=limit)

    def position(self, job_id: str) -> int:
        """1-based place in the queue; 0 when not queued."""
        with self._lock:
            return self._queue.index(job_id) + 1 if job_id in self._queue else 0

    def events(self, job_id: str, after: int = 0, timeout: Optional[float] = None) -> list[dict]:
        """Events of a job with sequence number > `after` (each has "seq"), waiting up to `timeout`."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self._events.get(job_id, ()) if e["seq"] > after]
                if found or end is None:
                    return found
                left = end - time.monotonic()
                if left <= 0:
                    return []
                self._changed.wait(left)

    def watch(self, job_id: str, poll: float = 0.5) -> Iterator[list[dict]]:
        """Yield batches of new events (an empty batch every `poll` s) until the job has ended."""
        seq = 0
        while True:
            batch = self.events(job_id, seq, timeout=poll)
            if batch:
                seq = batch[-1]["seq"]
            yield batch
            if any(e["type"] in events.FINAL_TYPES for e in batch):
                return
            job = self.store.get(job_id)
            if job is None or (job.final and not batch and not self.events(job_id, seq)):
                return

    def wait(self, job_id: str, timeout: float = 600.0) -> Job:
        end = time.monotonic() + timeout
        for _ in self.watch(job_id, poll=0.2):
            if time.monotonic() > end:
                raise TimeoutError(f"Job {job_id} did not finish within {timeout} s.")
        return self._job(job_id)

    def estimate(self, settings) -> Optional[dict]:
        """The engine's {seconds, memory_gb, frame_evals}; None if it cannot say. ValueError for bad settings."""
        try:
            from genl.api import estimate
        except ImportError:
            return None
        settings = self._prepare(settings, keep_upload=False)
        settings.validate()
        return estimate(settings)

    def preview_masks(self, video, object_prompt: str, model: str = "demo", method: str = "auto", *,
                      fps=None, start: float = 0.0, end=None, size=None, samples: int = 4) -> dict:
        """Edit anything: the object's masks over a few sampled frames ({"frames", "method", "note", "ok"}).
        Runs as the light `mask_preview` kind in the worker queue, so no mask model loads in this process."""
        from genl.settings import MaskPreviewSettings

        got = self._run_light(MaskPreviewSettings(video=str(video or ""), object_prompt=object_prompt,
                                                  mask_method=method, model=model or "demo", fps=fps, start=start,
                                                  end=end, samples=samples, **_size(size)))
        return {"frames": got["frames"], "method": got.get("method"), "note": got.get("note", ""),
                "ok": bool(got.get("ok"))}

    def preview_edges(self, video, *, fps=None, size=None, samples: int = 4) -> dict:
        """Edge control: edge maps of a few sampled frames of the reference ({"frames", "num_frames", "note"}).
        Runs as the light `edge_preview` kind in the worker queue."""
        from genl.settings import EdgePreviewSettings

        got = self._run_light(EdgePreviewSettings(video=str(video or ""), fps=fps, samples=samples, **_size(size)))
        return {"frames": got["frames"], "num_frames": int(got["num_frames"]), "note": got.get("note", "")}

    def _run_light(self, settings, timeout: float = 300.0) -> dict:
        """Run a light job kind (a preview) through the worker queue ahead of waiting jobs; return its
        outputs with the frames read back, then forget the job (previews do not belong in the history)."""
        import numpy as np
        from PIL import Image

        settings.max_frames = min(int(settings.max_frames), self.max_frames)
        spec = JobSpec.from_settings(settings)  # validates
        with self._lock:
            job = self.store.add(spec)
            self._queue.insert(0, job.id)
            self._announce_positions()
            self._dispatch()
        try:
            done = self.wait(job.id, timeout)
        except TimeoutError:
            self.cancel(job.id)
            raise ValueError("The preview waited too long for a free worker: try again when the running job "
                             "has finished.") from None
        outputs = dict(done.outputs)
        if done.status == DONE and outputs.get("frames_dir"):
            outputs["frames"] = [np.asarray(Image.open(p).convert("RGB"))
                                 for p in sorted(Path(outputs["frames_dir"]).glob("*.png"))]
        if done.status != RUNNING:
            self.delete(job.id)
        if done.status != DONE:
            raise ValueError(done.message or "The preview could not be made.")
        return outputs

    def models(self) -> list[dict]:
        from genl.models import available_models

        return list(available_models(self.configured_models or None))

    def info(self) -> dict:
        with self._lock:
            workers = [{"device": w.device, "ready": w.ready, "running": w.current, "problem": w.broken}
                       for w in self.workers]
            queued = len(self._queue)
        return {"outputs": str(self.outputs), "uploads": str(self.uploads), "devices": self.devices,
                "workers": workers, "queued": queued, "max_frames": self.max_frames,
                "max_upload_mb": self.max_upload_mb}

    # ---- internals ------------------------------------------------------------------------------
    def _job(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise ValueError(f"There is no job '{job_id}' (it may have been deleted).")
        return job

    def _prepare(self, settings, keep_upload: bool = True):
        """Apply the studio's limits and folders to settings before validation."""
        if isinstance(settings, dict):
            from genl.settings import settings_from_dict

            settings = settings_from_dict(settings)
        settings.max_frames = min(int(settings.max_frames), self.max_frames)
        if getattr(settings, "kind", "") == "edit":
            if settings.video and keep_upload:
                settings.video = self._keep_upload(settings.video)
            if hasattr(settings, "cache_dir") and not settings.cache_dir:
                settings.cache_dir = str(self.outputs / "cache")
        if getattr(settings, "control_video", "") and keep_upload:
            settings.control_video = self._keep_upload(settings.control_video)
        return settings

    def _keep_upload(self, path: str) -> str:
        """Copy an uploaded video next to the outputs (content-named) so re-runs outlive Gradio's cache."""
        src = Path(path)
        if not src.is_file() or self.uploads in src.resolve().parents:
            return str(path)
        import hashlib

        digest = hashlib.sha256()
        with open(src, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        dest = self.uploads / f"{digest.hexdigest()[:16]}{src.suffix.lower()}"
        if not dest.exists():
            self.uploads.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        return str(dest)

    def _enqueue(self, spec: JobSpec) -> Job:
        with self._lock:
            job = self.store.add(spec)
            self._queue.append(job.id)
            self._announce_positions()
            self._dispatch()
        return self.store.get(job.id)

    def _dispatch(self) -> None:
        with self._lock:
            for w in self.workers:
                if not self._queue:
                    break
                if w.idle:
                    job_id = self._queue.pop(0)
                    spec = self._job(job_id).spec
                    self.store.update(job_id, status=RUNNING, started=time.time(), message="Starting.")
                    w.submit(spec, self.outputs / job_id)
            self._announce_positions()

    def _announce_positions(self) -> None:
        for i, job_id in enumerate(self._queue, 1):
            if self._positions.get(job_id) != i:
                self._positions[job_id] = i
                self._record(events.queued(job_id, i), update_store=False)
                self.store.update(job_id, message=events.describe(events.queued(job_id, i)))

    def _record(self, ev: dict, update_store: bool = True) -> None:
        with self._changed:
            self._seq += 1
            ev = dict(ev, seq=self._seq)
            self._events.setdefault(ev["job"], deque(maxlen=2000)).append(ev)
            if update_store:
                self._store_event(ev)
            if ev["type"] in events.FINAL_TYPES and len(self._events) > KEEP_EVENT_LOGS:
                self._forget_old_event_logs()
            self._changed.notify_all()

    def _forget_old_event_logs(self) -> None:
        """Ended jobs keep their history row; only the oldest in-memory event logs are dropped."""
        ended = [j for j, log in self._events.items() if log and log[-1]["type"] in events.FINAL_TYPES]
        for job_id in ended[: len(self._events) - KEEP_EVENT_LOGS]:
            del self._events[job_id]

    def _store_event(self, ev: dict) -> None:
        job_id, kind = ev["job"], ev["type"]
        if kind == "started":
            self.store.update(job_id, status=RUNNING, message=events.describe(ev))
        elif kind == "progress":
            self.store.update(job_id, progress=ev["fraction"], message=events.describe(ev))
        elif kind == "preview":
            job = self.store.get(job_id)
            if job is not None:
                self.store.update(job_id, outputs=dict(job.outputs, preview=ev["path"]))
        elif kind in _FINAL_STATUS:
            values = {"status": _FINAL_STATUS[kind], "finished": time.time(), "message": events.describe(ev)}
            if kind == "finished":
                values.update(progress=1.0, outputs=ev["outputs"])
                seconds = ev["outputs"].get("seconds")
                values["message"] = f"Done in {events.format_seconds(float(seconds))}." if seconds else "Done."
            self.store.update(job_id, **values)
            self._positions.pop(job_id, None)

    def _on_event(self, worker, ev: dict) -> None:
        with self._changed:
            if "job" in ev:
                self._record(ev)
            else:
                self._changed.notify_all()  # ready / broken: wake wait_ready
            if ev["type"] in ("ready",) + events.FINAL_TYPES:
                self._dispatch()

    def _on_crash(self, worker, job_id: Optional[str], code: Optional[int]) -> None:
        if job_id is not None:
            self._record(events.failed(job_id, CRASHED.format(code=code)))
