"""The facade the UI talks to: submit, cancel, move, delete, re-run, share, list, watch events, estimate.

It owns the durable queue (SQLite rows with a position, mirrored in `_queue`), one worker per device, and
turns worker events into history rows and per-job event logs that UI generators poll. No Gradio, no tensors.

Folders under `outputs`: `results/<job>/` holds only what may be served (video, thumbnail, settings JSON,
live previews); `private/` holds the database, uploads, the inversion cache, each job's work folder
(frames) and the lock files, and is never served. One studio per outputs folder: `private/studio.lock`
is held for the studio's life, and a new studio waits until no worker of an earlier one holds
`private/workers.lock`, so two servers never race for the same job folder.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from . import events
from .spec import CANCELLED, DONE, FAILED, INTERRUPTED, RUNNING, Job, JobSpec
from .calibration import Calibration
from .store import JobStore
from .gpu_pool import POLICIES, GpuPool
from .worker import DEFAULT_JOB_FN, ProcessWorker, ThreadWorker, publish

CRASHED = ("The worker process stopped unexpectedly while running this job (exit code {code}). This usually "
           "means it ran out of memory: try fewer frames or a smaller resolution. The worker was restarted.")
SHUT_DOWN = "The server was shut down while this job was running. Re-run it to try again."
KEEP_EVENT_LOGS = 200  # jobs whose live events stay in memory (history rows are kept in SQLite regardless)
_FINAL_STATUS = {"finished": DONE, "failed": FAILED, "cancelled": CANCELLED}
NO_JOB = "There is no job '{job_id}' (it may have been deleted)."


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
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


class FolderInUse(RuntimeError):
    """Another studio, or a worker left by one, still uses this outputs folder."""


def _lock_outputs(private: Path, leftover_wait: float):
    """Hold private/studio.lock (exclusive) and wait for leftover workers to release private/workers.lock."""
    f = open(private / "studio.lock", "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise FolderInUse(f"Another Gen-L Studio (process {pid}) is using the outputs folder {private.parent}. "
                          "Stop it first, or start this one with another --outputs folder.") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    with open(private / "workers.lock", "a+") as w:
        end = time.monotonic() + leftover_wait
        while True:
            try:
                fcntl.flock(w.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(w.fileno(), fcntl.LOCK_UN)
                break
            except OSError:
                if time.monotonic() > end:
                    f.close()
                    raise FolderInUse("A worker process of an earlier Gen-L Studio is still running on the outputs "
                                      f"folder {private.parent}; stop it, then start again.") from None
                time.sleep(0.1)
    return f


class Studio:
    def __init__(self, outputs="outputs", *, devices: Optional[Sequence[str]] = None, job_fn: str = DEFAULT_JOB_FN,
                 max_frames: int = 1024, max_upload_mb: int = 500, preview_interval: float = 1.0,
                 preview_frames: int = 8, tiny_decoder: str = "", threads: Optional[bool] = None,
                 models: Optional[Sequence[str]] = None, model_roots: Sequence[str] = (), start: bool = True,
                 leftover_wait: float = 15.0, gpu_policy: str = "one-per-job"):
        from genl.models import DEFAULT_MOTION_ADAPTER, DEFAULT_SD, DEMO_NAME
        from genl.validation import ModelPolicy

        self.outputs = Path(outputs).resolve()
        self.results = self.outputs / "results"
        self.private = self.outputs / "private"
        for folder in (self.results, self.private):
            folder.mkdir(parents=True, exist_ok=True)
        self.uploads, self.work = self.private / "uploads", self.private / "work"
        self._lock_file = _lock_outputs(self.private, leftover_wait)
        self.max_frames, self.max_upload_mb = int(max_frames), int(max_upload_mb)
        self.configured_models = list(models or [])
        self.model_policy = ModelPolicy(offered=[DEMO_NAME, *(self.configured_models or [DEFAULT_SD,
                                                                                         DEFAULT_MOTION_ADAPTER])],
                                        roots=[str(Path(r).resolve()) for r in model_roots])
        _move_old_database(self.outputs, self.private)
        self.store = JobStore(self.private / "jobs.sqlite")
        self.calibration = Calibration(self.private / "calibration.json")  # rates measured on this machine
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._queue: list[str] = []
        self._persisted: tuple = ()
        self._positions: dict[str, int] = {}
        self._events: dict[str, deque] = {}
        self._interrupting: set[str] = set()
        self._seq = 0
        self._started = self._closing = self._closed = False
        zerogpu = is_zero_gpu()
        self.devices = list(devices) if devices else (["cuda"] if zerogpu else detect_devices())
        options = {"preview_interval": preview_interval, "preview_frames": preview_frames,
                   "tiny_decoder": tiny_decoder, "zerogpu": zerogpu, "lock": str(self.private / "workers.lock")}
        worker_cls = ThreadWorker if (threads if threads is not None else zerogpu) else ProcessWorker
        self.pool = GpuPool(list(self.devices), gpu_policy)  # which GPUs each running job holds
        self._light: set[str] = set()  # previews: one device whatever the policy
        self.workers = [worker_cls(i, d, job_fn, self._on_event, options) for i, d in enumerate(self.devices)]
        for w in self.workers:
            w.on_crash = self._on_crash
        _move_old_results(self.store, self.outputs, self.results, self.work)
        self._queue = [job.id for job in self.store.recover()]
        self._announce_positions()
        if start:
            self.start()

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._started = True
        for w in self.workers:
            w.start()

    def close(self, grace: float = 5.0) -> None:
        """Stop cleanly: cancel running jobs, give them `grace` s, then terminate the workers. Running jobs
        become 'interrupted' (one click re-runs them); queued jobs stay queued and run after a restart."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
            running = {w.current for w in self.workers if w.current}
            self._interrupting |= running
            for w in self.workers:
                if w.current:
                    w.cancel(w.current)
        end = time.monotonic() + grace
        while any(w.current for w in self.workers) and time.monotonic() < end:
            time.sleep(0.05)
        if self._started:
            for w in self.workers:
                w.stop(timeout=max(0.5, end - time.monotonic()))
        with self._lock:
            for job_id in running:
                job = self.store.get(job_id)
                if job is not None and job.status == RUNNING:
                    self.store.update(job_id, status=INTERRUPTED, message=SHUT_DOWN, finished=time.time())
            self._closed = True
            self.store.close()
            self._lock_file.close()

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

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if getattr(w, "pid", None)]

    # ---- actions --------------------------------------------------------------------------------
    def submit(self, settings, owner: Optional[str] = None) -> Job:
        """Validate and queue a settings object (or its dict); the job's row exists, queued, when this returns.
        Raises ValueError for bad settings (numbers, models, timeline)."""
        spec = JobSpec.from_settings(self._prepare(settings), models=self.model_policy)
        return self._enqueue(spec, owner)

    def rerun(self, job_id: str, user: Optional[str] = None) -> Job:
        """Queue a new job with exactly the settings of `job_id` (also for interrupted jobs)."""
        job = self._job(job_id, user)
        return self._enqueue(JobSpec(settings=dict(job.spec.settings)), user)

    def cancel(self, job_id: str, user: Optional[str] = None) -> bool:
        """Cancel a queued or running job; False when it had already ended."""
        with self._lock:
            job = self._job(job_id, user, own=True)
            if job_id in self._queue:
                self._queue.remove(job_id)
                self._record(events.cancelled(job_id, "Cancelled before it started."))
                self._dispatch()
                return True
            if job.status == RUNNING:
                return any(w.cancel(job_id) for w in self.workers)
        return False

    def move(self, job_id: str, where: Union[str, int], user: Optional[str] = None) -> int:
        """Reorder a queued job: 'up', 'down', 'top', 'bottom' or a 1-based position. Returns its new position."""
        with self._lock:
            self._job(job_id, user, own=True)
            if job_id not in self._queue:
                raise ValueError("Only queued jobs can be moved: this one has already started or ended.")
            i = self._queue.index(job_id)
            table = {"up": i - 1, "down": i + 1, "top": 0, "bottom": len(self._queue) - 1}
            if isinstance(where, str) and where not in table:
                raise ValueError("Move a job 'up', 'down', to the 'top', the 'bottom', or to a position number.")
            target = table[where] if isinstance(where, str) else int(where) - 1
            target = min(max(target, 0), len(self._queue) - 1)
            self._queue.insert(target, self._queue.pop(i))
            self._announce_positions()
            return target + 1

    def share(self, job_id: str, shared: bool = True, user: Optional[str] = None) -> None:
        """Let every logged-in user see (and re-run) a job, or make it private again."""
        with self._lock:
            self._job(job_id, user, own=True)
            self.store.update(job_id, shared=bool(shared))

    def delete(self, job_id: str, user: Optional[str] = None) -> None:
        """Forget a job and remove its folders. A running job must be cancelled first."""
        with self._lock:
            job = self._job(job_id, user, own=True)
            if job.status == RUNNING:
                raise ValueError("This job is still running: cancel it first, then delete it.")
            if job_id in self._queue:
                self._queue.remove(job_id)
                self._announce_positions()
            self.store.delete(job_id)
            self._events.pop(job_id, None)
            self._positions.pop(job_id, None)
        for base in (self.results, self.work, self.outputs):
            folder = (base / job_id).resolve()
            if folder.parent == base and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)

    # ---- reading --------------------------------------------------------------------------------
    def get(self, job_id: str, user: Optional[str] = None) -> Optional[Job]:
        """The job, or None when it does not exist or `user` may not see it (the same answer: no probing)."""
        job = self.store.get(job_id)
        return job if job is not None and _visible(job, user) else None

    def list(self, limit: int = 100, user: Optional[str] = None) -> list[Job]:
        """Newest first; with a `user` (auth on) only their own jobs and shared ones."""
        return self.store.list(limit=limit, visible_to=user)

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
        from genl.validation import check_numbers

        settings = self._prepare(settings, keep_upload=False)
        check_numbers(settings)
        settings.validate()
        est = estimate(settings)
        return self.calibration.estimate(settings, est) if est else est

    def preview_masks(self, video, object_prompt: str, model: str = "demo", method: str = "auto", *,
                      fps=None, start: float = 0.0, end=None, size=None, samples: int = 4, masks=None) -> dict:
        """Edit anything: the object's masks over a few sampled frames ({"frames", "method", "note", "ok",
        "mask_video"}). `masks` (MaskSettings) as the edit job will use them; `method` alone for older callers.
        Runs as the light `mask_preview` kind in the worker queue, so no mask model loads in this process, and
        fills the mask cache the edit job reads."""
        from genl.conditions.mask_settings import MaskSettings
        from genl.settings import MaskPreviewSettings

        masks = masks or MaskSettings(method=method)
        if masks.upload:
            masks.upload = self._keep_upload(masks.upload)
        got = self._run_light(MaskPreviewSettings(video=str(video or ""), object_prompt=object_prompt, masks=masks,
                                                  cache_dir=str(self.private / "cache"), model=model or "demo",
                                                  fps=fps, start=start, end=end, samples=samples, **_size(size)))
        return {"frames": got["frames"], "method": got.get("method"), "note": got.get("note", ""),
                "ok": bool(got.get("ok")), "mask_video": got.get("mask_video")}

    def preview_edges(self, video, *, fps=None, size=None, samples: int = 4) -> dict:
        """Edge control: edge maps of a few sampled frames of the reference ({"frames", "num_frames", "note"}).
        Runs as the light `edge_preview` kind in the worker queue."""
        from genl.settings import EdgePreviewSettings

        got = self._run_light(EdgePreviewSettings(video=str(video or ""), fps=fps, samples=samples, **_size(size)))
        return {"frames": got["frames"], "num_frames": int(got["num_frames"]), "note": got.get("note", "")}

    def preview_controls(self, video, kind: str = "pose", model: str = "demo", *, detector: str = "", fps=None,
                         size=None, samples: int = 4) -> dict:
        """Pose / depth / edge control: {"strip" (image), "control_video" (a served mp4), "num_frames", "note"}.
        Runs as the light `control_preview` kind in the worker; the maps stay cached for the job."""
        import numpy as np
        from PIL import Image

        from genl.settings import ControlPreviewSettings

        got = self._run_light(ControlPreviewSettings(video=str(video or ""), type=kind, detector=detector,
                                                     model=model or "demo", fps=fps, samples=samples, **_size(size)))
        served = self.results / "controls" / Path(got["control_video"]).name
        served.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(got["control_video"], served)
        return {"strip": np.asarray(Image.open(got["strip"]).convert("RGB")), "control_video": str(served),
                "num_frames": int(got["num_frames"]), "note": got.get("note", "")}

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
            self._light.add(job.id)
            self._announce_positions()
            self._dispatch()
        try:
            done = self.wait(job.id, timeout)
        except TimeoutError:
            self.cancel(job.id)
            raise ValueError("The preview waited too long for a free worker: try again when the running job "
                             "has finished.") from None
        outputs = dict(done.outputs)
        if done.status == DONE and outputs.get("mask_video"):  # outlives the preview job's folder
            import tempfile

            fd, copy = tempfile.mkstemp(prefix="genl-masks-", suffix=".mp4")
            os.close(fd)
            outputs["mask_video"] = shutil.copyfile(outputs["mask_video"], copy)
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

    @property
    def tunings_dir(self) -> Path:
        return self.private / "tunings"

    def tunings(self) -> list[dict]:
        """Saved one-shot tunings (genl/tuning/store.py), newest first, for the tune tab's table."""
        from genl.tuning.store import TuningStore

        return TuningStore(self.tunings_dir).list()

    def info(self) -> dict:
        with self._lock:
            workers = [{"device": w.device, "ready": w.ready, "running": w.current, "problem": w.broken}
                       for w in self.workers]
            queued = len(self._queue)
            holding = {job: self.pool.describe(job) for job in self.pool.held}
        return {"devices": self.devices, "workers": workers, "queued": queued, "max_frames": self.max_frames,
                "max_upload_mb": self.max_upload_mb, "gpu_policy": self.pool.policy,
                "gpu_policy_note": POLICIES[self.pool.policy], "holding": holding}

    def set_gpu_policy(self, policy: str) -> None:
        """one-per-job or all-on-one; running jobs keep their GPUs, the next job follows the new policy."""
        with self._lock:
            self.pool.set_policy(policy)
            self._dispatch()

    def gpus(self, job_id: str) -> str:
        """The GPUs a running job holds, as the Jobs tab shows them ('GPUs 0, 1'); '' when it holds none."""
        with self._lock:
            return self.pool.describe(job_id)  # no server paths: the Settings tab shows this to users

    # ---- internals ------------------------------------------------------------------------------
    def _job(self, job_id: str, user: Optional[str] = None, own: bool = False) -> Job:
        """The job if `user` may see it (own=True: may change it); else the one 'no such job' message."""
        job = self.store.get(str(job_id or ""))
        if job is None or not _visible(job, user):
            raise ValueError(NO_JOB.format(job_id=job_id))
        if own and user is not None and job.owner != user:
            raise ValueError("This job was shared with you by another user: you can view and re-run it, "
                             "but only its owner can cancel, move or delete it.")
        return job

    def _prepare(self, settings, keep_upload: bool = True):
        """Apply the studio's limits and folders to settings before validation."""
        if isinstance(settings, dict):
            from genl.settings import settings_from_dict

            settings = settings_from_dict(settings)
        from genl.validation import number

        settings.max_frames = min(number(settings.max_frames, "The frame limit", True, 1), self.max_frames)
        if getattr(settings, "kind", "") == "edit":
            if settings.video and keep_upload:
                settings.video = self._keep_upload(settings.video)
            if getattr(settings, "masks", None) is not None and settings.masks.upload and keep_upload:
                settings.masks.upload = self._keep_upload(settings.masks.upload)
            if hasattr(settings, "cache_dir") and not settings.cache_dir:
                settings.cache_dir = str(self.private / "cache")
        if getattr(settings, "kind", "") == "tune":  # tunings live in the private folder, shared by jobs
            if settings.video and keep_upload:
                settings.video = self._keep_upload(settings.video)
            settings.store_dir = str(self.tunings_dir)
        if getattr(settings, "tuned", ""):  # only a tuning of this studio's store (a key, never any path)
            settings.tuned = str(self.tunings_dir / Path(settings.tuned).name)
        if getattr(settings, "control_video", "") and keep_upload:
            settings.control_video = self._keep_upload(settings.control_video)
        for control in (getattr(settings, "controls", None) or ()) if keep_upload else ():
            # a ready pose/depth/edge video the user uploaded: kept like the main upload
            if isinstance(control, dict) and control.get("video"):
                control["video"] = self._keep_upload(control["video"])
            elif getattr(control, "video", ""):
                control.video = self._keep_upload(control.video)
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

    def _enqueue(self, spec: JobSpec, owner: Optional[str] = None) -> Job:
        with self._lock:
            if self._closing:
                raise ValueError("The server is shutting down: submit the job again once it is back.")
            job = self.store.add(spec, owner=owner or "")  # durable (a queued row) before anything else
            self._queue.append(job.id)
            self._persisted += (job.id,)  # add() already stored its position
            self._announce_positions()
            self._dispatch()
        return self.store.get(job.id)

    def _dispatch(self) -> None:
        with self._lock:
            if self._closing:
                return
            by_device = {w.device: w for w in self.workers}
            ready = [w.device for w in self.workers if w.idle]
            for job_id, devices in self.pool.dispatch(self._queue, ready=ready, single=self._light):
                self._queue.remove(job_id)
                self._light.discard(job_id)
                spec = self.store.get(job_id).spec
                self.store.update(job_id, status=RUNNING, started=time.time(), message="Starting.",
                                  position=None)
                by_device[devices[0]].submit(spec, self.results / job_id, self.work / job_id,
                                             devices=list(devices) if len(devices) > 1 else None)
            self._announce_positions()

    def _announce_positions(self) -> None:
        """Persist the queue order when it changed and tell each waiting job its new place."""
        if tuple(self._queue) != self._persisted:
            self.store.set_queue(self._queue)
            self._persisted = tuple(self._queue)
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
            if kind == "cancelled" and job_id in self._interrupting:  # cancelled by shutdown, not by its user
                values.update(status=INTERRUPTED, message=SHUT_DOWN)
            if kind == "finished":
                values.update(progress=1.0, outputs=ev["outputs"])
                seconds = ev["outputs"].get("seconds")
                values["message"] = f"Done in {events.format_seconds(float(seconds))}." if seconds else "Done."
            self.store.update(job_id, **values)
            self._positions.pop(job_id, None)

    def _on_event(self, worker, ev: dict) -> None:
        with self._changed:
            if ev["type"] == "started" and self.pool.describe(ev["job"]):
                ev = dict(ev, device=self.pool.describe(ev["job"]))  # "Started on GPUs 0, 1."
            if ev["type"] in events.FINAL_TYPES:
                self.pool.release(ev.get("job", ""))  # every GPU of the job, whichever way it ended
            if "job" in ev:
                self._record(self.calibration.observe(ev, self._settings_of))
            else:
                self._changed.notify_all()  # ready / broken: wake wait_ready
            if ev["type"] in ("ready",) + events.FINAL_TYPES:
                self._dispatch()

    def _settings_of(self, job_id: str):
        job = self.store.get(job_id)
        return None if job is None else job.spec.to_settings()

    def _on_crash(self, worker, job_id: Optional[str], code: Optional[int]) -> None:
        if job_id is not None:
            with self._lock:
                self.pool.release(job_id)
        if job_id is not None and not self._closing:
            self._record(events.failed(job_id, CRASHED.format(code=code)))


def _visible(job: Job, user: Optional[str]) -> bool:
    return user is None or job.owner == user or job.shared


def _move_old_database(outputs: Path, private: Path) -> None:
    """Before private/ existed the database sat in the (served) outputs folder: move it, WAL included."""
    old, new = outputs / "jobs.sqlite", private / "jobs.sqlite"
    if old.exists() and not new.exists():
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{old}{suffix}").exists():
                shutil.move(f"{old}{suffix}", f"{new}{suffix}")
    for name in ("uploads", "cache"):
        if (outputs / name).is_dir() and not (private / name).exists():
            shutil.move(str(outputs / name), str(private / name))


def _move_old_results(store: JobStore, outputs: Path, results: Path, work: Path) -> None:
    """Old job folders (outputs/<job>/): frames to private work folders, final files to results/<job>/."""
    for job in store.list(statuses=(DONE,)):
        old = outputs / job.id
        if not old.is_dir() or not job.outputs.get("video", "").startswith(str(old)):
            continue
        work.mkdir(parents=True, exist_ok=True)
        shutil.move(str(old), str(work / job.id))
        moved = {k: str(work / job.id / Path(v).relative_to(old)) if isinstance(v, str) and v.startswith(str(old))
                 else v for k, v in job.outputs.items()}
        (results / job.id).mkdir(parents=True, exist_ok=True)
        moved = publish(moved, results / job.id)
        preview = moved.get("preview")
        if preview and Path(preview).is_file():
            moved["preview"] = str(shutil.copy(preview, results / job.id / Path(preview).name))
        store.update(job.id, outputs=moved)
