"""One job on several devices: a rank per GPU (genl/distributed.py), rank 0 reports progress and writes.

`run_on_devices` has a job function's signature, so the worker runs a job held on several GPUs exactly like
one on a single GPU: it launches the ranks, pumps rank 0's progress events back into the worker's callback
(previews included) and turns the worker's cancel flag into an event every rank's agreement reads. A failed
or cancelled rank ends every rank (launch leaves no process behind) and the job reports the cause.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from contextlib import contextmanager
from typing import Callable, Optional, Sequence

from genl.distributed import DistributedContext, launch
from genl.progress import Cancelled


def _portable(event: dict) -> dict:
    """A progress event that pickles by value (x0 as a numpy array, not a shared-memory tensor)."""
    x0 = event.get("x0")
    if x0 is not None and hasattr(x0, "detach"):
        event = dict(event, x0=x0.detach().float().cpu().numpy())
    return event


def _restored(event: dict) -> dict:
    import torch

    x0 = event.get("x0")
    return dict(event, x0=torch.from_numpy(x0)) if x0 is not None else event


def rank_job(ctx: DistributedContext, job_fn: str, settings, out_dir: str, events=None, cancel=None):
    """Body of one rank: the ordinary job function on this rank's device; only rank 0 reports progress.

    Every rank runs the whole job up to the last denoising step (the plans it builds are window-parallel
    because this process joined a group); then the others stop and rank 0 decodes and writes."""
    from .worker import import_string

    fn = import_string(job_fn)
    settings.device = str(ctx.device)
    ctx.watch_cancel(cancel.is_set if cancel is not None else None)
    progress = (lambda ev: events.put(_portable(ev))) if ctx.is_main and events is not None else None
    return fn(settings, out_dir, progress=progress, is_cancelled=ctx.is_cancelled)


@contextmanager
def _visible_gpus(devices: Sequence[str]):
    """Ranks use cuda:<rank>, so the spawned ranks see exactly the held GPUs, in order."""
    if not all(d.startswith("cuda") for d in devices):
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.partition(":")[2] or "0" for d in devices]
    if before:
        listed = before.split(",")
        ids = [listed[int(i)] for i in ids]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def run_on_devices(job_fn: str, settings, out_dir, *, devices: Sequence[str], progress: Optional[Callable] = None,
                   is_cancelled: Optional[Callable[[], bool]] = None, models=None, poll: float = 0.2,
                   timeout_s: Optional[float] = None) -> dict:
    """Run `job_fn` (a "module:function" job function) with one rank per device; returns rank 0's result.

    `models` is not shared: every rank loads its own copy on its GPU."""
    if len(devices) < 2:
        raise ValueError("A job on several GPUs needs at least two devices.")
    device_type = "cuda" if all(d.startswith("cuda") for d in devices) else "cpu"
    ctx = mp.get_context("spawn")
    events, cancel, done = ctx.Queue(), ctx.Event(), threading.Event()
    errors: list = []

    def pump() -> None:
        """Rank 0's events into the worker's callback; the worker's cancel into the ranks' event."""
        while True:
            try:
                ev = events.get(timeout=poll)
            except queue.Empty:
                if done.is_set():  # the ranks have ended and every event is read
                    return
                ev = None
            except (EOFError, OSError):
                return
            if is_cancelled is not None and is_cancelled():
                cancel.set()
            if ev is not None and progress is not None:
                try:
                    progress(_restored(ev))
                except Cancelled:
                    cancel.set()
                except Exception as exc:  # noqa: BLE001 - a preview failure must not hang the ranks
                    errors.append(exc)

    thread = threading.Thread(target=pump, name="genl-rank-events", daemon=True)
    thread.start()
    threads = max(1, (os.cpu_count() or 1) // len(devices)) if device_type == "cpu" else None
    kwargs = {"timeout_s": timeout_s} if timeout_s else {}
    try:
        with _visible_gpus(devices):
            results = launch(rank_job, len(devices), job_fn, settings, str(out_dir), events, cancel,
                             device_type=device_type, threads=threads, **kwargs)
    finally:
        done.set()
        thread.join(5)
        events.close()
        events.cancel_join_thread()
    if cancel.is_set() or (is_cancelled is not None and is_cancelled()):
        raise Cancelled("The job was cancelled.")
    return results[0]
