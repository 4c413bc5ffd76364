"""Job system: spec JSON, SQLite history and recovery, previews, and a real worker process."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from conftest_app import SYNTHETIC_JOB, generate_settings
from genl.jobs import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, JobSpec, JobStore, Studio
from genl.jobs import events as ev
from genl.jobs.preview import Previewer, latents_to_rgb, pick_frames, tile_frames
from genl.jobs.store import SERVER_STOPPED


# ---- specs and store -----------------------------------------------------------------------------
def test_spec_round_trip_and_validation():
    spec = JobSpec.from_settings(generate_settings())
    again = JobSpec.from_json(spec.to_json())
    assert again.id == spec.id and again.settings == spec.settings and again.kind == "generate"
    assert again.to_settings().to_dict() == spec.to_settings().to_dict()
    with pytest.raises(ValueError, match="gap"):
        JobSpec.from_settings(generate_settings("0-5: a cat | 8-15: a dog"))
    with pytest.raises(ValueError, match="empty"):
        JobSpec.from_settings(generate_settings("   "))


def test_store_round_trip_and_restart_recovery(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    specs = [JobSpec.from_settings(generate_settings(seed=i)) for i in range(3)]
    for i, spec in enumerate(specs):
        store.add(spec, created=1000.0 + i)
    store.update(specs[0].id, status=DONE, progress=1.0, outputs={"video": "/x/video.mp4"})
    store.update(specs[1].id, status=RUNNING, progress=0.5)
    job = store.get(specs[0].id)
    assert job.status == DONE and job.outputs == {"video": "/x/video.mp4"} and job.spec.settings == specs[0].settings
    assert [j.id for j in store.list()] == [s.id for s in reversed(specs)]
    store.close()

    store = JobStore(tmp_path / "jobs.sqlite")  # "the server restarted"
    requeue = store.recover()
    assert [j.id for j in requeue] == [specs[2].id]
    crashed = store.get(specs[1].id)
    assert crashed.status == INTERRUPTED and crashed.message == SERVER_STOPPED
    assert store.get(specs[0].id).status == DONE
    store.delete(specs[0].id)
    assert store.get(specs[0].id) is None and store.count() == 2


# ---- previews -------------------------------------------------------------------------------------
def test_preview_linear_approximation_and_throttle(tmp_path):
    assert pick_frames(100, 8)[0] == 0 and pick_frames(100, 8)[-1] == 99 and len(pick_frames(100, 8)) == 8
    assert pick_frames(3, 8) == [0, 1, 2]
    rgb = latents_to_rgb(torch.zeros(4, 5, 6, 7))
    assert rgb.shape == (5, 6, 7, 3) and rgb.dtype == np.uint8 and int(rgb[0, 0, 0, 0]) in (127, 128)
    assert latents_to_rgb(torch.randn(8, 2, 4, 4)).shape == (2, 4, 4, 3)  # non-SD latents still preview
    tiled = tile_frames(np.zeros((5, 8, 8, 3), np.uint8), min_height=16, columns=4)
    assert tiled.shape == (32, 64, 3)

    p = Previewer(tmp_path, max_frames=4, min_interval=60.0)
    x0 = torch.randn(1, 4, 16, 8, 8)
    first = p(x0, "denoise", 1)
    assert first is not None and first.exists()
    assert p(x0, "denoise", 2) is None  # throttled
    assert p(None, "decode", 1) is None


def test_event_descriptions():
    assert "position 3" in ev.describe(ev.queued("j", 3))
    text = ev.describe(ev.progress("j", "denoise", 5, 10, 0.5, 75))
    assert "5/10" in text and "1 min 15 s" in text
    assert ev.overall_fraction("edit", "denoise", 0, 10) == pytest.approx(0.45)


# ---- a real worker process -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = Studio(tmp_path_factory.mktemp("studio"), devices=["cpu"], job_fn=SYNTHETIC_JOB, preview_interval=0.0)
    assert s.wait_ready(120)
    yield s
    s.close()


def _types(studio, job_id):
    return [e["type"] for e in studio.events(job_id)]


def test_worker_runs_a_job(studio):
    job = studio.submit(generate_settings())
    assert job.status in (QUEUED, RUNNING)
    done = studio.wait(job.id, 60)
    assert done.status == DONE, done.message
    types = _types(studio, job.id)
    assert types[0] in ("queued", "started") and types[-1] == "finished"
    assert "progress" in types and "preview" in types
    for key in ("video", "settings", "thumbnail", "preview"):
        assert done.outputs[key] and __import__("os").path.exists(done.outputs[key]), key
    assert done.outputs["video"].startswith(str(studio.results / job.id))
    served = {p.name for p in (studio.results / job.id).iterdir()}
    assert served == {"video.mp4", "thumbnail.png", "settings.json", "previews"}, served  # final files only
    rerun = studio.wait(studio.rerun(job.id).id, 60)
    assert rerun.status == DONE and rerun.spec.settings == done.spec.settings and rerun.id != done.id


def test_cancel_mid_run_then_next_job_runs(studio):
    slow = studio.submit(generate_settings("slow red circle", steps=50))
    waiting = studio.submit(generate_settings("slow blue square", steps=50))
    assert studio.position(waiting.id) == 1
    for batch in studio.watch(slow.id, poll=0.1):
        if any(e["type"] == "progress" for e in batch):
            break
    t0 = time.monotonic()
    assert studio.cancel(waiting.id)  # queued: cancelled at once
    assert studio.get(waiting.id).status == CANCELLED
    assert studio.cancel(slow.id)
    job = studio.wait(slow.id, 30)
    assert job.status == CANCELLED and time.monotonic() - t0 < 5
    assert job.progress < 0.5
    assert not studio.cancel(slow.id)  # already ended
    assert studio.wait(studio.submit(generate_settings()).id, 60).status == DONE


def test_failure_and_crash_leave_the_worker_serving(studio):
    failed = studio.wait(studio.submit(generate_settings("fail")).id, 60)
    assert failed.status == FAILED and "asked to fail" in failed.message
    crashed = studio.wait(studio.submit(generate_settings("crash")).id, 60)
    assert crashed.status == FAILED and "stopped unexpectedly" in crashed.message
    after = studio.wait(studio.submit(generate_settings()).id, 120)  # served by the restarted worker
    assert after.status == DONE, after.message


def test_delete(studio):
    job = studio.wait(studio.submit(generate_settings()).id, 60)
    folder = studio.results / job.id
    assert folder.is_dir()
    studio.delete(job.id)
    assert studio.get(job.id) is None and not folder.exists()
    with pytest.raises(ValueError, match="no job"):
        studio.rerun(job.id)


def test_studio_restart_recovery(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")  # where older versions kept it: the studio moves it to private/
    running = store.add(JobSpec.from_settings(generate_settings()))
    store.update(running.id, status=RUNNING)
    queued = store.add(JobSpec.from_settings(generate_settings(seed=1)))
    store.close()
    s = Studio(tmp_path, devices=["cpu"], job_fn=SYNTHETIC_JOB, start=False)
    try:
        assert s.get(running.id).status == INTERRUPTED and "server stopped" in s.get(running.id).message
        assert (tmp_path / "private" / "jobs.sqlite").is_file() and not (tmp_path / "jobs.sqlite").exists()
        assert s.position(queued.id) == 1
        s.start()
        assert s.wait(queued.id, 120).status == DONE
    finally:
        s.close()


def test_preview_cost_stays_within_its_share_of_run_time(tmp_path):
    """Each preview waits cost/max_share after the last one, so all previews but the latest cost at most
    max_share (4 %) of the time since the first: the bound holds however slow the machine is."""
    def slow_decoder(latents):  # a preview that costs 5 ms or more
        time.sleep(0.005)
        return np.zeros((latents.shape[1], 4, 4, 3), np.uint8)

    p = Previewer(tmp_path, min_interval=0.0, decoder=slow_decoder)
    x0 = torch.zeros(1, 4, 8, 4, 4)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:  # "denoising steps" of 2 ms for two seconds
        time.sleep(0.002)
        p(x0, "denoise", 1)
    assert p.count >= 2
    assert p.spent - p._cost <= p.max_share * (time.monotonic() - t0)


def test_thread_worker_for_zerogpu(tmp_path):
    s = Studio(tmp_path, devices=["cpu"], job_fn=SYNTHETIC_JOB, threads=True)
    try:
        assert s.wait_ready(30)
        assert s.wait(s.submit(generate_settings()).id, 60).status == DONE
        slow = s.submit(generate_settings("slow", steps=50))
        for batch in s.watch(slow.id, poll=0.1):
            if any(e["type"] == "progress" for e in batch):
                break
        s.cancel(slow.id)
        assert s.wait(slow.id, 30).status == CANCELLED
    finally:
        s.close()


def test_a_worker_that_cannot_start_says_why(tmp_path):
    s = Studio(tmp_path, devices=["cpu"], job_fn="genl.no_such_module:run_job")
    try:
        with pytest.raises(RuntimeError, match="no_such_module"):
            s.wait_ready(60)
        assert "no_such_module" in s.info()["workers"][0]["problem"]
    finally:
        s.close()


def test_small_local_vae_previews_through_itself():
    from conftest_app import tiny_models
    from genl.jobs.preview import small_vae_decoder

    decode = small_vae_decoder(tiny_models()["sd"])
    assert decode is not None
    frames = decode(torch.randn(4, 3, 8, 8))  # (C, F, h, w) -> (F, H, W, 3)
    assert frames.shape == (3, 16, 16, 3) and frames.dtype == np.uint8
    assert small_vae_decoder("some-org/not-on-this-machine") is None  # falls back to the linear table
