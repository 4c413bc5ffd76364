"""The worker: pops job specs, runs the engine, reports events. One per GPU (a CPU worker when none).

`serve` is the loop (jobs in, events out, models kept loaded between jobs). It runs in a spawned process
(`ProcessWorker`, the normal case: a crash or OOM kill of one job cannot take the server down) or, on
Hugging Face ZeroGPU where only the main process may hold the GPU, in a thread (`ThreadWorker`).

Cancelling is a flag keyed by job id: the server writes the id into a shared buffer and the job's
`is_cancelled()` compares it with its own id, so a late cancel can never hit the next job. Besides the
engine's own check, the progress callback raises `Cancelled`, so any job function stops at its next
progress report (the engine reports every window batch, so within seconds).

No orphans: a worker process ignores SIGINT (the server decides when it stops), exits by itself within a
second when its parent dies (it polls the parent's pid), and holds a shared lock on the outputs folder's
worker lock for its whole life, so a restarted server can wait until every leftover worker is gone.

A job writes into a private work folder; only its final files (video, thumbnail, settings JSON) and live
previews go to its results folder, the one the web server may serve.
"""
from __future__ import annotations

import functools
import gc
import importlib
import multiprocessing as mp
import os
import queue
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

from genl.distributed import RankFailed
from genl.progress import Cancelled

from . import events
from .preview import Previewer, load_tiny_decoder, small_vae_decoder
from .spec import JobSpec

DEFAULT_JOB_FN = "genl.api:run_job"
PUBLISHED = ("video", "thumbnail", "settings", "mask_video")  # the files a results folder holds (+ previews)
OOM_MESSAGE = ("The GPU ran out of memory. Try fewer frames, a smaller resolution, fewer windows per call "
               "or fp16 precision.")


def import_string(path: str):
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def free_memory(device: str) -> None:
    gc.collect()
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


def make_model_manager(device: str):
    """The engine's model cache, kept alive between jobs (models load once per worker)."""
    from genl.models import ModelManager

    return ModelManager()


class _Clock:
    """Seconds per step of the current stage, for an ETA."""

    def __init__(self):
        self.stage, self.t0, self.first_step = None, 0.0, 0

    def eta(self, stage: str, step: int, total: int, later_steps: int = 0) -> Optional[float]:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.t0, self.first_step = stage, now, step
            return None
        done = step - self.first_step
        if done <= 0:
            return None
        per_step = (now - self.t0) / done
        return per_step * (total - step + later_steps)


def publish(outputs: dict, out_dir: Path) -> dict:
    """Move the final files into the results folder `out_dir`; other outputs (frames) stay where they are."""
    outputs = dict(outputs)
    for key in PUBLISHED:
        src = outputs.get(key)
        if src and Path(src).is_file() and Path(src).parent.resolve() != out_dir.resolve():
            dest = out_dir / Path(src).name
            shutil.move(str(src), dest)
            outputs[key] = str(dest)
    return outputs


def run_one(fn: Callable, spec: JobSpec, out_dir: Path, *, worker: int, device: str, models, emit: Callable,
            is_cancelled: Callable[[], bool], preview: dict, work_dir: Optional[Path] = None) -> None:
    """Run one job and emit started/progress/preview and exactly one of finished/failed/cancelled.

    The job function writes into `work_dir` (default: `out_dir`); on success its final files move to
    `out_dir`, which also receives the live previews."""
    job = spec.id
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(work_dir) if work_dir else out_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = spec.to_settings()
    if getattr(settings, "device", "auto") == "auto":
        settings.device = device  # the stored spec keeps "auto", so a re-run may land on any worker
    decoder = preview.get("decoder") or small_vae_decoder(getattr(settings, "model", ""))
    previewer = Previewer(out_dir / "previews", max_frames=preview.get("frames", 8),
                          min_interval=preview.get("interval", 1.0), decoder=decoder)
    clock = _Clock()
    last_preview = None
    steps = int(getattr(settings, "steps", 0) or 0)

    def progress(event: dict) -> None:
        nonlocal last_preview
        if is_cancelled():
            raise Cancelled("The job was cancelled.")
        stage, step, total = event.get("stage", "denoise"), int(event.get("step", 0)), int(event.get("total", 0))
        later = steps if stage == "inversion" else 0
        emit(events.engine_progress(job, event, events.overall_fraction(spec.kind, stage, step, total),
                                    clock.eta(stage, step, total, later)))
        path = previewer(event.get("x0"), stage, step)
        if path is not None:
            last_preview = str(path)
            emit(events.preview(job, str(path), stage, step))

    emit(events.started(job, worker, device))
    t0 = time.monotonic()
    try:
        result = fn(settings, work_dir, progress=progress, is_cancelled=is_cancelled, models=models)
        outputs = dict(result or {})
        video = outputs.get("video")
        if not video or not Path(video).is_file():
            raise RuntimeError("the job finished without writing its video file")
        outputs = publish(outputs, out_dir)
        if last_preview:
            outputs.setdefault("preview", last_preview)
        outputs["seconds"] = f"{time.monotonic() - t0:.1f}"
        outputs["preview_seconds"] = f"{previewer.spent:.2f}"
        emit(events.finished(job, outputs))
    except BaseException as exc:  # noqa: BLE001 - every outcome must be reported, the worker lives on
        if is_cancelled() or isinstance(exc, Cancelled):
            emit(events.cancelled(job, "Cancelled while running."))
        elif isinstance(exc, ValueError):
            emit(events.failed(job, str(exc)))
        elif isinstance(exc, RankFailed):  # one rank of a several-GPU job: its first line names rank and cause
            emit(events.failed(job, OOM_MESSAGE if _is_oom(exc) else str(exc).splitlines()[0]))
        elif _is_oom(exc):
            emit(events.failed(job, OOM_MESSAGE))
        else:
            traceback.print_exc()
            emit(events.failed(job, f"Unexpected error ({type(exc).__name__}: {exc}). "
                                    "The full traceback is in the server log."))
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
    finally:
        free_memory(device)


def _exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Poll the parent's pid; when the server is gone (re-parented to init), leave at once, mid-job or not."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os._exit(0)


_LOCK_FILES: list = []  # kept open for the process's life: the shared lock lasts as long as the worker


def hold_worker_lock(path: str) -> None:
    """Take a shared lock on the outputs folder's worker lock (released by the OS when this process ends)."""
    import fcntl

    f = open(path, "a+")
    fcntl.flock(f.fileno(), fcntl.LOCK_SH)
    _LOCK_FILES.append(f)


def serve(worker: int, device: str, job_fn: str, jobs, out, cancel_flag, options: dict) -> None:
    """Worker loop. jobs: (spec json, results dir, work dir, devices) tuples, None to stop. out: event dicts.
    A job given several devices (the all-on-one GPU policy) runs as one rank per device (jobs/parallel.py).

    Besides job events it sends {"type": "ready"} once models can be served, or {"type": "broken",
    "message"} if the job function cannot even be imported.
    """
    if options.get("parent_pid"):  # a process worker (not a thread): guard against becoming an orphan
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_exit_with_parent, args=(int(options["parent_pid"]),), daemon=True,
                         name="genl-parent-watch").start()
        if options.get("lock"):
            hold_worker_lock(options["lock"])
    try:
        fn = import_string(job_fn)
        if options.get("zerogpu"):
            import spaces

            fn = spaces.GPU(duration=int(options.get("gpu_duration", 300)))(fn)
        __import__("genl.accel").accel.enable_compile_cache()  # compiled UNet blocks survive restarts
        models = make_model_manager(device)
        preview = {"frames": options.get("preview_frames", 8), "interval": options.get("preview_interval", 1.0)}
        if options.get("tiny_decoder"):
            preview["decoder"] = load_tiny_decoder(options["tiny_decoder"], device)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        out.put({"type": "broken", "worker": worker, "message": f"{type(exc).__name__}: {exc}"})
        return
    out.put({"type": "ready", "worker": worker, "device": device})
    while True:
        item = jobs.get()
        if item is None:
            return
        spec_json, out_dir, work_dir, *held = item
        devices = list(held[0]) if held and held[0] else [device]
        spec = JobSpec.from_json(spec_json)
        job = fn
        if len(devices) > 1:
            from .parallel import run_on_devices

            job = functools.partial(run_on_devices, job_fn, devices=devices)

        def is_cancelled(job=spec.id.encode()) -> bool:
            return cancel_flag.value == job

        run_one(job, spec, Path(out_dir), worker=worker, device=device, models=models, emit=out.put,
                is_cancelled=is_cancelled, preview=preview, work_dir=work_dir)


class _Flag:
    """Stand-in for multiprocessing.Array('c') in the thread worker."""

    value = b""


class _BaseWorker:
    """Server-side handle: owns the queues, tracks the current job and forwards events to `on_event`."""

    def __init__(self, index: int, device: str, job_fn: str, on_event: Callable[["_BaseWorker", dict], None],
                 options: Optional[dict] = None):
        self.index, self.device, self.job_fn = index, device, job_fn
        self.on_event = on_event
        self.options = dict(options or {})
        self.current: Optional[str] = None
        self.ready = False
        self.broken = ""
        self._stopping = False

    @property
    def idle(self) -> bool:
        return self.ready and self.current is None

    def submit(self, spec: JobSpec, out_dir: Path, work_dir: Optional[Path] = None,
               devices: Optional[list] = None) -> None:
        """`devices`: every device the job holds when it spreads over several (this worker's is the first)."""
        self.current = spec.id
        self.jobs.put((spec.to_json(), str(out_dir), str(work_dir or out_dir), list(devices or [])))

    def cancel(self, job_id: str) -> bool:
        if self.current != job_id:
            return False
        self.cancel_flag.value = job_id.encode()
        return True

    def _forward(self, ev: dict) -> None:
        if ev["type"] == "ready":
            self.ready, self.broken = True, ""
        elif ev["type"] == "broken":
            self.ready, self.broken = False, ev.get("message", "")
        elif ev["type"] in events.FINAL_TYPES and ev.get("job") == self.current:
            self.current = None
        self.on_event(self, ev)


class ThreadWorker(_BaseWorker):
    """Runs `serve` in a thread of this process (ZeroGPU Spaces; also handy for debugging)."""

    def start(self) -> None:
        self.jobs, self.cancel_flag = queue.Queue(), _Flag()
        self._out = _CallbackQueue(self._forward)
        self._thread = threading.Thread(target=serve, name=f"genl-worker-{self.index}", daemon=True,
                                        args=(self.index, self.device, self.job_fn, self.jobs, self._out,
                                              self.cancel_flag, self.options))
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self.jobs.put(None)
        self._thread.join(timeout)


class _CallbackQueue:
    def __init__(self, callback):
        self.put = callback


class ProcessWorker(_BaseWorker):
    """Runs `serve` in a spawned process; restarts it if it dies, failing the job it was running."""

    on_crash: Callable[["ProcessWorker", Optional[str], Optional[int]], None] = None

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self.jobs, self._out = ctx.Queue(), ctx.Queue()
        self.cancel_flag = ctx.Array("c", 64, lock=False)
        self.ready, self.current = False, None
        options = dict(self.options, parent_pid=os.getpid())
        self.process = ctx.Process(target=serve, name=f"genl-worker-{self.index}", daemon=True,
                                   args=(self.index, self.device, self.job_fn, self.jobs, self._out,
                                         self.cancel_flag, options))
        self.process.start()
        self._listener = threading.Thread(target=self._listen, args=(self.process, self._out),
                                          name=f"genl-worker-{self.index}-events", daemon=True)
        self._listener.start()

    def _listen(self, process, out) -> None:
        restarts_delay = 0.0
        while True:
            try:
                ev = out.get(timeout=0.2)
            except queue.Empty:
                if process.is_alive() or self._stopping:
                    if self._stopping and not process.is_alive():
                        return
                    continue
                break
            except (EOFError, OSError):
                if self._stopping:
                    return
                break
            self._forward(ev)
            if ev["type"] == "broken":
                restarts_delay = 30.0  # an import error will not fix itself quickly; do not spin
        if self._stopping:
            return
        job, code = self.current, process.exitcode
        self.current, self.ready = None, False
        if self.on_crash is not None:
            self.on_crash(self, job, code)
        time.sleep(restarts_delay or 0.5)
        if not self._stopping:
            self.start()

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if getattr(self, "process", None) is not None else None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end; after `timeout` s terminate it, then kill it: it never outlives the server."""
        self._stopping = True
        try:
            self.jobs.put(None)
        except (ValueError, OSError):
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(3)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(3)
        self._listener.join(2)
        for q in (self.jobs, self._out):
            q.close()
            q.cancel_join_thread()  # a feeder thread must not keep this process alive for an unread item
