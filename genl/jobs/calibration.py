"""Estimates calibrated on the machine that runs the jobs.

The static estimate (genl/api.estimate) guesses from published rates; this layer replaces it with rates
measured here, per (device, model, generator, scheduler), kept in `private/calibration.json` and refined after
every finished job from its own stage timings. Work per stage, in units that scale with the job:

    inversion  steps · strength · windows · M · px      (0 when the inversion is already cached)
    denoise    steps · windows · M · cfg · px           (M = clip length, cfg = 2 with guidance)
    decode     frames · px                              (px = width · height / 512²)

plus a fixed `overhead` (seconds: reading the video, loading the model, writing the file). A stage's rate is
seconds per unit; progress is weighted by each stage's expected seconds instead of fixed guesses.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from . import events

STAGES = ("inversion", "denoise", "decode")
# Before any job ran here: a unit of inversion costs one UNet frame evaluation, like denoising; decoding a
# frame about half of one. Only the shares matter until the first job has measured real seconds.
DEFAULT_RELATIVE = {"inversion": 1.0, "denoise": 1.0, "decode": 0.5}
KEEP = 0.5  # weight of the stored rate when a new measurement arrives (the newest job counts half)


def device_family(device: str) -> str:
    """'cuda:1' and 'cuda' share rates; so do all CPU workers (however the worker spells its device)."""
    return str(device or "cpu").split(":")[0].strip().lower()


def rate_key(settings, device: str) -> str:
    generator = getattr(settings, "pipeline", "") or getattr(settings, "kind", "")
    return "|".join([device_family(device), str(settings.model), str(generator), str(settings.scheduler)])


def inversion_signature(settings, video_digest: str) -> str:
    """What decides whether an edit's inversion is cached (genl/pipelines/edit.py keys the cache on the
    video, model and inversion settings)."""
    parts = [video_digest, settings.model, settings.source_prompt, settings.steps, settings.strength,
             settings.scheduler, settings.fps, settings.start, settings.end, settings.width, settings.height,
             settings.codenoise.clip_length, settings.codenoise.stride]
    return json.dumps([str(p) for p in parts])


def windows_per_step(settings, fallback: float = 1.0) -> float:
    """Clips of M frames one step denoises, averaged over the run's steps: moving schedules (shifted, settled)
    change the count every step, so the first step's windows would misstate both the estimate and the
    measured rate; "partitioned" clips are shorter at the ends, so frames are counted, in units of M."""
    from genl.plan import CoDenoisePlan

    cn = getattr(settings, "codenoise", None)
    if cn is None:
        return float(fallback)
    steps = max(1, int(settings.steps))
    plan = CoDenoisePlan.from_settings(cn, settings.num_frames, num_steps=steps)
    return plan.frames_over(steps) / (steps * cn.clip_length)


def stage_units(settings, windows: float, inversion_cached: bool = False) -> dict:
    cn = settings.codenoise
    px = settings.width * settings.height / 512 ** 2
    cfg = 2 if settings.guidance > 1 else 1
    evals = settings.steps * windows * cn.clip_length * px
    units = {"denoise": evals * cfg, "decode": settings.num_frames * px, "inversion": 0.0}
    if getattr(settings, "kind", "") == "edit" and not inversion_cached:
        units["inversion"] = evals * float(getattr(settings, "strength", 1.0))
    return units


class Calibration:
    """Measured rates in a JSON file. Thread-safe; a missing or damaged file is just 'not calibrated yet'."""

    def __init__(self, path, digest: Optional[Callable[[str], str]] = None):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._digest = digest or _file_digest
        self.data = self._load()
        self._jobs: dict[str, dict] = {}  # running jobs: expected seconds per stage, timings seen so far

    # ---- stored rates ------------------------------------------------------------------------------
    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def rates(self, key: str) -> Optional[dict]:
        return self.data.get("rates", {}).get(key)

    def is_cached(self, settings) -> bool:
        if getattr(settings, "kind", "") != "edit" or not getattr(settings, "video", ""):
            return False
        try:
            sig = inversion_signature(settings, self._digest(settings.video))
        except (OSError, ValueError):
            return False
        return sig in self.data.get("inverted", [])

    # ---- estimate ----------------------------------------------------------------------------------
    def expected(self, settings, device: str, windows: float, static_seconds: Optional[float] = None) -> dict:
        """Seconds per stage (+ "overhead"), "calibrated" (measured here) and "cached" (inversion free)."""
        cached = self.is_cached(settings)
        units = stage_units(settings, windows, cached)
        r = self.rates(rate_key(settings, device))
        if r:
            seconds = {s: units[s] * r.get(s, r["denoise"] * DEFAULT_RELATIVE[s]) for s in STAGES}
            seconds["overhead"] = float(r.get("overhead", 0.0))
        else:  # shares from the default relative costs, total from the static estimate
            weights = {s: units[s] * DEFAULT_RELATIVE[s] for s in STAGES}
            full = stage_units(settings, windows, False)
            full_w = sum(full[s] * DEFAULT_RELATIVE[s] for s in STAGES) or 1.0
            per_unit = (static_seconds or full_w) / full_w  # the static estimate never knows about the cache
            seconds = {s: w * per_unit for s, w in weights.items()}
            seconds["overhead"] = 0.0
        return dict(seconds=seconds, calibrated=bool(r), cached=cached, jobs=int((r or {}).get("jobs", 0)))

    def estimate(self, settings, static: dict) -> dict:
        """The static estimate dict with "seconds" from rates measured here (when there are any)."""
        exp = self.expected(settings, static.get("device", "cpu"),
                            windows_per_step(settings, static.get("windows") or 1), static.get("seconds"))
        return dict(static, seconds=sum(exp["seconds"].values()), calibrated=exp["calibrated"],
                    inversion_cached=exp["cached"], calibration_jobs=exp["jobs"])

    # ---- running jobs ------------------------------------------------------------------------------
    def observe(self, ev: dict, settings_for: Callable[[str], object]) -> dict:
        """Follow one job event: weight a progress event's fraction (and ETA) by the stages' expected
        seconds; on "finished", refine the rates from the stage timings seen. Returns the event to record."""
        try:
            return self._observe(ev, settings_for)
        except Exception:  # noqa: BLE001 - a calibration problem must never touch the job itself
            self._jobs.pop(ev.get("job"), None)
            return ev

    def _observe(self, ev: dict, settings_for) -> dict:
        job, kind = ev.get("job"), ev.get("type")
        if kind == "started":
            settings = settings_for(job)
            if settings is not None:
                self._start(job, settings, ev.get("device", "cpu"), ev["time"])
            return ev
        state = self._jobs.get(job)
        if state is None:
            return ev
        if kind == "progress" and ev.get("stage") in STAGES:
            return self._progress(state, ev)
        if kind == "finished":
            self._jobs.pop(job, None)
            self._finish(state, ev["time"])
        elif kind in ("failed", "cancelled"):
            self._jobs.pop(job, None)
        return ev

    def _start(self, job: str, settings, device: str, t: float) -> None:
        windows = windows_per_step(settings)
        exp = self.expected(settings, device, windows)
        self._jobs[job] = dict(settings=settings, kind=getattr(settings, "kind", ""), device=device, windows=windows, expected=exp["seconds"],
                               cached=exp["cached"], started=t, stages={}, last=t)

    def _progress(self, state: dict, ev: dict) -> dict:
        stage, step, total, t = ev["stage"], int(ev["step"]), int(ev["total"]), ev["time"]
        seen = state["stages"].setdefault(stage, dict(begin=state["last"], first=(step, t), total=total))
        seen["last"] = (step, t)
        state["last"] = t
        exp = state["expected"]
        present = [s for s in STAGES if exp[s] > 0 or s in state["stages"]]
        inner = min(max(step / total, 0.0), 1.0) if total else 0.0
        fraction = events.overall_fraction(state["kind"], stage, step, total, {s: exp[s] for s in present})
        if stage not in present:
            present.append(stage)
        # ETA: this stage at its measured pace, the later ones at their expected seconds scaled by how this
        # job's stages so far compared with what was expected.
        per_step = _per_step(seen)
        eta = ev.get("eta")
        if per_step is not None:
            spent = sum(_stage_seconds(v) for v in state["stages"].values())
            planned = sum(exp[s] * (1.0 if s != stage else inner) for s in state["stages"]) or None
            pace = min(max(spent / planned, 0.25), 4.0) if planned else 1.0
            later = sum(exp[s] for s in present[present.index(stage) + 1:])
            eta = per_step * (total - step) + later * pace
        return dict(ev, fraction=fraction, eta=eta)

    def _finish(self, state: dict, t_end: float) -> None:
        settings, stages = state["settings"], state["stages"]
        units = stage_units(settings, state["windows"], state["cached"])
        measured = {s: _stage_seconds(v, full=True) for s, v in stages.items()}
        overhead = max(0.0, (t_end - state["started"]) - sum(measured.values()))
        key = rate_key(settings, state["device"])
        with self._lock:
            self.data = self._load() or self.data  # another studio may have written meanwhile
            rates = self.data.setdefault("rates", {}).setdefault(key, {})
            for s, secs in measured.items():
                if units.get(s, 0) > 0:
                    new = secs / units[s]
                    rates[s] = new if s not in rates else KEEP * rates[s] + (1 - KEEP) * new
            rates["overhead"] = overhead if "overhead" not in rates else KEEP * rates["overhead"] + (1 - KEEP) * overhead
            rates["jobs"] = int(rates.get("jobs", 0)) + 1
            rates["updated"] = time.time()
            if "inversion" in stages and getattr(settings, "video", ""):
                try:
                    sig = inversion_signature(settings, self._digest(settings.video))
                    inverted = self.data.setdefault("inverted", [])
                    if sig not in inverted:
                        inverted[:] = (inverted + [sig])[-200:]
                except (OSError, ValueError):
                    pass
            if "denoise" in rates:
                self._save()


def _per_step(seen: dict) -> Optional[float]:
    (s0, t0), (s1, t1) = seen["first"], seen["last"]
    if s1 > s0:
        return (t1 - t0) / (s1 - s0)
    return (t1 - seen["begin"]) / s1 if s1 > 0 else None


def _stage_seconds(seen: dict, full: bool = False) -> float:
    """Seconds a stage took (so far), from steps after its first: the first step of a job's first stage
    also pays for loading the model, which belongs to the overhead."""
    per = _per_step(seen)
    if per is None:
        return 0.0
    steps = seen["total"] if full else seen["last"][0]
    return per * steps


_digests: dict = {}


def _file_digest(path: str) -> str:
    """A video's sha256, remembered by (path, size, mtime): the estimate runs on every form change."""
    from genl.video_io import video_hash

    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = video_hash(path)
    return _digests[key]
