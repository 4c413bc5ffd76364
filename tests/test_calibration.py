"""The per-machine calibration layer: measured rates, refined per job, cached inversions free, weighted progress."""
from __future__ import annotations

from genl.jobs import events
from genl.jobs.calibration import Calibration, stage_units
from genl.settings import EditSettings, GenerateSettings


def _settings(**kw):
    s = GenerateSettings(prompt="a red circle", model="demo", num_frames=32, width=128, height=128, steps=10)
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def _run_job(cal, settings, job, per_step: dict, load=5.0, t0=1000.0):
    """Feed the events a worker would send, with fake clock times: per_step seconds per stage."""
    plan = [("inversion", settings.steps)] if settings.kind == "edit" and "inversion" in per_step else []
    plan += [("denoise", settings.steps), ("decode", 4)]
    cal.observe(events.started(job, 0, "cpu") | {"time": t0}, lambda j: settings)
    t, fractions = t0 + load, []
    for stage, total in plan:
        for i in range(1, total + 1):
            t += per_step[stage]
            ev = cal.observe(events.progress(job, stage, i, total, 0.0, None) | {"time": t}, lambda j: settings)
            fractions.append(ev["fraction"])
    cal.observe(events.finished(job, {}) | {"time": t + 1.0}, lambda j: settings)
    return t + 1.0 - t0, fractions


def test_second_job_estimate_is_measured_and_progress_is_weighted(tmp_path):
    cal = Calibration(tmp_path / "calibration.json")
    s = _settings()
    static = {"seconds": 3.0, "device": "cpu", "windows": 5}
    first = cal.estimate(s, static)
    assert not first["calibrated"]
    took, fractions = _run_job(cal, s, "a", {"denoise": 6.0, "decode": 0.5})
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # a fresh Calibration reads the JSON file: the rates outlive the server
    second = Calibration(tmp_path / "calibration.json").estimate(s, static)
    assert second["calibrated"] and abs(second["seconds"] - took) / took < 0.3
    # twice the steps: twice the denoise time
    assert abs(cal.estimate(_settings(steps=20), static)["seconds"] - (took + 60)) / (took + 60) < 0.3
    # the next job's progress is weighted by the measured shares: denoise took 60 of 62 stage seconds,
    # so its last step lands near 60/62 (the fixed guess said 95 %)
    _, fractions = _run_job(cal, s, "b", {"denoise": 6.0, "decode": 0.5})
    assert abs(fractions[9] - 60 / 62) < 0.01 and abs(fractions[4] - 30 / 62) < 0.01


def test_rates_are_refined_not_replaced(tmp_path):
    cal = Calibration(tmp_path / "c.json")
    s = _settings()
    _run_job(cal, s, "a", {"denoise": 2.0, "decode": 0.1})
    _run_job(cal, s, "b", {"denoise": 4.0, "decode": 0.1})
    rate = next(iter(cal.data["rates"].values()))
    units = stage_units(s, 5)["denoise"]
    assert abs(rate["denoise"] * units - 30.0) < 0.5  # halfway between 20 s and 40 s
    assert rate["jobs"] == 2


def test_cached_inversion_counts_as_free(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not really a video, only its bytes are hashed")
    cal = Calibration(tmp_path / "c.json")
    s = EditSettings(prompt="a blue square", source_prompt="a red circle", video=str(video), model="demo",
                     num_frames=32, width=128, height=128, steps=10)
    static = {"seconds": 3.0, "device": "cpu", "windows": 5}
    assert not cal.is_cached(s)
    took, _ = _run_job(cal, s, "a", {"inversion": 3.0, "denoise": 6.0, "decode": 0.5})
    again = cal.estimate(s, static)
    assert again["inversion_cached"]
    assert abs(again["seconds"] - (took - 30)) / (took - 30) < 0.3
    s.strength = 0.5  # other inversion settings: not cached
    assert not cal.estimate(s, static)["inversion_cached"]


def test_damaged_file_and_unknown_jobs_are_harmless(tmp_path):
    (tmp_path / "c.json").write_text("{not json")
    cal = Calibration(tmp_path / "c.json")
    ev = events.progress("nobody", "denoise", 1, 2, 0.25, None)
    assert cal.observe(ev, lambda j: None) == ev
    assert not cal.estimate(_settings(), {"seconds": 1.0, "device": "cpu", "windows": 1})["calibrated"]


def test_minutes_wording():
    assert events.format_minutes(20) == "under a minute"
    assert events.format_minutes(308) == "about 5 minutes"
    assert events.format_minutes(4800) == "about 1 h 20 min"


def test_moving_schedules_count_each_steps_clips(tmp_path):
    """Settled clips overlap on the first steps only: the estimate must count every step's clips, so that a
    rate measured on a fixed-window job predicts a settled one (and the other way round)."""
    from genl.jobs.calibration import windows_per_step
    from genl.plan import CoDenoisePlan
    from genl.settings import CoDenoiseSettings

    fixed = _settings(num_frames=64, steps=15, codenoise=CoDenoiseSettings(stride=8))
    settled = _settings(num_frames=64, steps=15, codenoise=CoDenoiseSettings(stride=16, schedule="settled"))
    assert windows_per_step(fixed) == len(CoDenoisePlan.from_settings(fixed.codenoise, 64).windows) == 7
    plan = CoDenoisePlan.from_settings(settled.codenoise, 64, num_steps=15)
    counts = [len(plan.windows_at(k)) for k in range(15)]
    assert counts[0] == 7 and min(counts) < 7  # overlapping first, then moving clips at S=M
    assert windows_per_step(settled) == sum(counts) / 15

    cal = Calibration(tmp_path / "c.json")
    static = {"seconds": 3.0, "device": "cpu", "windows": 7}  # the strip's first-step count
    per_clip = 0.5  # seconds per clip and step, the same for both jobs
    took, _ = _run_job(cal, fixed, "a", {"denoise": 7 * per_clip, "decode": 0.1})
    expect = 5.0 + 1.0 + 4 * 0.1 + sum(counts) * per_clip  # load + finish + decode + every step's clips
    assert abs(cal.estimate(settled, static)["seconds"] - expect) / expect < 0.1
