"""Fault injection: real kills, real signals, another process on the database, hostile inputs.

Queue behaviour runs on the cheap synthetic job (conftest_app.synthetic_job) in real worker processes, and
the app runs as a real subprocess (`app.main`), so SIGTERM and kill -9 hit exactly what they hit in
production. Asserted every time: no job lost, no process left behind, every error a clear sentence.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest_app import ROOT, SYNTHETIC_JOB, TESTS, free_port, generate_settings
from genl.jobs import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, Studio
from genl.settings import CoDenoiseSettings, EditSettings

NUMBERS = {"num_frames": 16, "width": 32, "height": 32, "fps": 8.0, "steps": 3, "guidance": 7.5, "seed": 1}
CODENOISE = {"clip_length": 8, "stride": 4, "windows_per_call": 1, "transition_frames": 0}
BAD = [math.nan, math.inf, -math.inf, 1e300, 2**70]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def sentence(msg: str) -> bool:
    """A message for people: one line, a capital first letter, a full stop, no Python internals."""
    return (msg[:1].isupper() and msg.rstrip().endswith(".") and "\n" not in msg and len(msg) < 400
            and not any(w in msg for w in ("Traceback", "Error:", "object", "unpacking", "NoneType")))


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = Studio(tmp_path_factory.mktemp("faults"), devices=["cpu"], job_fn=SYNTHETIC_JOB, preview_interval=0.0)
    assert s.wait_ready(120)
    yield s
    pids = s.worker_pids()
    s.close()
    assert gone(pids), "a worker outlived Studio.close()"


def started(studio, job_id):
    return studio.get(job_id).status != QUEUED and any(e["type"] == "progress" for e in studio.events(job_id))


# ---- the queue --------------------------------------------------------------------------------------
def test_kill_9_of_the_worker_mid_job(studio):
    job = studio.submit(generate_settings("slow red circle", steps=60))
    wait_for(lambda: started(studio, job.id), 60, "the slow job to start")
    pid = studio.worker_pids()[0]
    os.kill(pid, signal.SIGKILL)
    crashed = studio.wait(job.id, 30)
    assert crashed.status == FAILED and "stopped unexpectedly" in crashed.message and sentence(crashed.message)
    assert gone([pid])
    after = studio.wait(studio.submit(generate_settings()).id, 120)
    assert after.status == DONE, after.message
    assert studio.worker_pids()[0] != pid


def test_eight_jobs_at_once_two_cancelled_one_moved(studio):
    blocker = studio.submit(generate_settings("slow blocker", steps=15))
    submitted, errors = [], []

    def submit(i):
        try:
            submitted.append(studio.submit(generate_settings(seed=i, steps=2)).id)
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(submitted) == 8
    queued = studio.store.queued()  # durable at once: every job has a row and a distinct position
    assert {j.id for j in queued} >= set(submitted)
    assert [j.position for j in queued] == list(range(1, len(queued) + 1))
    order = [j.id for j in queued]
    assert studio.cancel(order[1]) and studio.cancel(order[4])
    last = order[-1]
    assert studio.move(last, "top") == 1 and studio.position(last) == 1
    assert studio.store.get(last).position == 1  # the new order is persisted
    with pytest.raises(ValueError, match="Only queued jobs"):
        studio.move(blocker.id, "up")
    jobs = [studio.wait(j, 120) for j in [blocker.id, *submitted]]
    statuses = sorted(j.status for j in jobs)
    assert statuses.count(DONE) == 7 and statuses.count(CANCELLED) == 2, statuses
    ran = sorted((j for j in jobs if j.id in submitted and j.status == DONE), key=lambda j: j.started)
    assert ran[0].id == last  # moved to the top, so it ran first
    for j in jobs:
        if j.status == DONE:
            assert {p.name for p in (studio.results / j.id).iterdir()} <= {"video.mp4", "thumbnail.png",
                                                                           "settings.json", "previews"}


def test_database_opened_by_another_process(studio):
    db = studio.private / "jobs.sqlite"
    reader = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
              "print(c.execute('SELECT COUNT(*) FROM jobs').fetchone()[0]); c.close()")
    before = int(subprocess.check_output([sys.executable, "-c", reader, str(db)], timeout=30))
    ids = [studio.wait(studio.submit(generate_settings(seed=100 + i)).id, 60).id for i in range(2)]
    subprocess.check_output([sys.executable, "-c", reader, str(db)], timeout=30)  # open/close again
    ids.append(studio.wait(studio.submit(generate_settings(seed=200)).id, 60).id)
    fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
           if os.path.islink(f"/proc/self/fd/{fd}")]
    assert not [f for f in fds if "jobs.sqlite" in f and "(deleted)" in f], fds
    after = int(subprocess.check_output([sys.executable, "-c", reader, str(db)], timeout=30))
    assert after == before + 3
    with sqlite3.connect(db) as other:  # a writer in another connection waits (busy_timeout), never corrupts
        statuses = dict(other.execute("SELECT id, status FROM jobs"))
    assert all(statuses[i] == DONE for i in ids)


# ---- validation at the edge ------------------------------------------------------------------------
def _with(field, value):
    cn = dict(CODENOISE)
    kw = dict(NUMBERS)
    if field in cn:
        cn[field] = value
    else:
        kw[field] = value
    return generate_settings(codenoise=CoDenoiseSettings(**cn), **{k: v for k, v in kw.items()})


@pytest.mark.parametrize("field", [*NUMBERS, *CODENOISE, "control_scale", "motion"])
def test_every_number_is_finite_and_in_range_before_queueing(studio, field):
    before = studio.store.count()
    for bad in BAD:
        if field == "motion":
            settings = generate_settings(motion=(bad, 0.0))
        elif field == "control_scale":
            settings = generate_settings(control_scale=bad)
        else:
            settings = _with(field, bad)
        with pytest.raises(ValueError) as err:
            studio.submit(settings)
        assert sentence(str(err.value)), str(err.value)
    assert studio.store.count() == before  # nothing reached the queue


def test_edit_numbers_are_checked(studio, tmp_path):
    for field in ("start", "end", "strength", "smoothness", "inversion_steps"):
        for bad in BAD:
            settings = EditSettings(prompt="a cat", video=str(ROOT / "assets" / "examples" / "red_circle_grass.mp4"),
                                    source_prompt="a circle", num_frames=16, width=32, height=32,
                                    codenoise=CoDenoiseSettings(clip_length=8, stride=4), **{field: bad})
            with pytest.raises(ValueError) as err:
                studio.submit(settings)
            assert sentence(str(err.value)), (field, bad, str(err.value))


def test_the_model_field_cannot_probe_the_server(studio, tmp_path):
    outside = tmp_path / "a-real-model-folder"
    outside.mkdir()
    probes = ["/etc/shadow", "/etc/no-such-file", "/etc", "../../../../etc/passwd", "~/.ssh/id_rsa",
              str(ROOT / "app.py"), str(outside), "file:///etc/passwd", "x/../../etc"]
    messages = set()
    for probe in probes:
        for field in ("model", "motion_adapter", "controlnet"):
            with pytest.raises(ValueError) as err:
                studio.submit(generate_settings(**{field: probe}))
            msg = str(err.value)
            assert sentence(msg), msg
            messages.add((field, msg.replace(probe, "<name>")))
    assert len(messages) == 3, messages  # one sentence per field, whatever the path
    for ok in ("demo", "some-org/some-model"):  # offered models and hub ids pass (hub ids fail later, clearly)
        studio.model_policy.check(ok)


def test_text_is_escaped_where_it_is_shown(studio):
    from ui import common

    evil = "<img src=x onerror=alert(1)>"
    assert "<img" not in common.safe(evil) and "&lt;img" in common.safe(evil)
    assert "<img" not in common.user_error(ValueError(f"Timeline row 1: '{evil}' is not a number.")).message

    def make(values):
        raise ValueError(f"Timeline row 1: '{evil}' in 'from' is not a number.")

    values = {"rows": [[0, 15, evil, evil]], "unit": "frames", "fps": 8, "num_frames": 16, "clip_length": 8,
              "stride": 4}
    strip, estimate = common.plan_text(studio, make, values)
    assert "<img" not in strip + estimate and "&lt;img" in estimate


# ---- the app as a real process: SIGTERM mid-job, restart on the same folder, kill -9 ------------------
class App:
    def __init__(self, outputs: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
                "if __name__ == '__main__':\n"
                "    import app; app.main(sys.argv[3:], job_fn='conftest_app:synthetic_job')\n")
        script = outputs.parent / "run_app.py"
        script.write_text(code)
        env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
        env.pop("GRADIO_TEMP_DIR", None)
        self.log = open(outputs.parent / f"app-{self.port}.log", "w")
        self.proc = subprocess.Popen([sys.executable, str(script), str(ROOT), str(TESTS), "--port", str(self.port),
                                      "--outputs", str(outputs), "--device", "cpu"], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        wait_for(self._up, 150, "the app to serve")
        from gradio_client import Client

        self.client = Client(self.url, verbose=False)

    def _up(self):
        assert self.proc.poll() is None, Path(self.log.name).read_text()[-3000:]
        try:
            urllib.request.urlopen(self.url, timeout=2)
            return True
        except OSError:
            return False

    def workers(self) -> list[int]:
        return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]

    def jobs(self) -> dict:
        rows = self.client.predict("", api_name="/jobs")[0]["data"]
        return {r[0]: r[2] for r in rows if r[0]}

    def stop(self) -> None:
        """Kill the app and its workers if still alive (a failed assertion must not leave them running)."""
        if self.proc.poll() is None:
            for pid in [self.proc.pid, *self.workers()]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def start_app():
    """App(outputs) that is stopped at teardown whatever the test did."""
    apps = []

    def start(outputs: Path) -> App:
        apps.append(App(outputs))
        return apps[-1]

    yield start
    for app in apps:
        app.stop()


def generate_params(prompt="a red circle", steps=2, **kw):
    rows = {"headers": ["from", "to", "prompt", "negative"], "data": [[0, 15, prompt, ""]], "metadata": None}
    params = dict(rows=rows, unit="frames", num_frames=16, fps=8, width=32, height=32, model="demo", seed=1,
                  randomize=False, steps=steps, guidance=7.5, scheduler="ddim", clip_length=8, stride=4,
                  weights="flat", schedule="fixed", fusion="output", negative_prompt="", pipeline="animatediff",
                  noise_share=0.0)
    params.update(kw)
    return params


def raw_call(app, params) -> str:
    """POST through the HTTP API with JSON a browser could send (NaN and Infinity included)."""
    names = [p["parameter_name"] for p in app.client.view_api(return_format="dict", print_info=False)
             ["named_endpoints"]["/generate"]["parameters"]]
    body = json.dumps({"data": [params[n] for n in names]}).encode()
    req = urllib.request.Request(f"{app.url}gradio_api/call/generate", body, {"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    return urllib.request.urlopen(f"{app.url}gradio_api/call/generate/{event}", timeout=60).read().decode()


def test_sigterm_mid_job_then_restart_then_kill_9(tmp_path, start_app):
    from gradio_client.exceptions import AppError

    outputs = tmp_path / "outputs"
    app = start_app(outputs)
    # hostile input through the API: every error is a sentence, and nothing is queued
    for name in ("num_frames", "fps", "width", "height", "seed", "steps", "guidance", "clip_length", "stride",
                 "noise_share"):
        for bad in BAD:
            stream = raw_call(app, generate_params(**{name: bad}))
            assert "event: error" in stream, (name, bad, stream)
            msg = json.loads(stream.split("data:", 1)[1].strip())["error"]
            assert sentence(msg), (name, bad, msg)
    evil = "<img src=x onerror=alert(1)>"
    with pytest.raises(AppError) as err:
        app.client.predict(**generate_params(model=evil), api_name="/generate")
    assert "<img" not in str(err.value) and "not available" in str(err.value)
    assert app.jobs() == {}

    slow = app.client.submit(**generate_params("slow red circle", steps=150), api_name="/generate")
    wait_for(lambda: slow.outputs() or slow.done(), 30, "the job id")
    assert slow.outputs(), (slow.status(), slow.exception() if slow.done() else None)
    slow_id = slow.outputs()[0][0]
    queued = [app.client.submit(**generate_params(f"a blue square {evil}", seed=i), api_name="/generate")
              for i in range(2)]
    wait_for(lambda: all(q.outputs() for q in queued), 30, "queued job ids")  # returned at once, not blocked
    queued_ids = [q.outputs()[0][0] for q in queued]
    # the two submits race each other: whichever landed second is told its place behind the other
    assert any("position 2" in q.outputs()[0][1] for q in queued), [q.outputs()[0][1] for q in queued]
    wait_for(lambda: app.jobs().get(slow_id) == "running", 60, "the slow job to run")
    workers = app.workers()
    assert workers
    t0 = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    assert app.proc.wait(30) == 0  # a clean exit through Studio.close(), not death by signal
    assert time.monotonic() - t0 < 20
    assert gone(workers), "a worker outlived the app after SIGTERM"

    again = start_app(outputs)  # the same outputs folder
    jobs = again.jobs()
    assert jobs[slow_id] == INTERRUPTED, jobs
    wait_for(lambda: all(again.jobs()[j] == DONE for j in queued_ids), 60, "queued jobs to run after restart")
    new_id = again.client.predict(slow_id, api_name="/rerun")[0]  # the one-click re-run of an interrupted job
    assert new_id != slow_id and again.jobs()[new_id] in (QUEUED, "running")
    assert set(again.jobs()) == {slow_id, new_id, *queued_ids}  # no job lost
    private = outputs / "private" / "jobs.sqlite"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{again.url}gradio_api/file={private}", timeout=10)

    workers = again.workers()
    again.proc.kill()  # kill -9: no handler runs; the workers must notice by themselves
    again.proc.wait(10)
    assert gone(workers, 10), "a worker outlived a kill -9 of the app"
    s = Studio(outputs, devices=["cpu"], start=False, leftover_wait=5)  # nothing holds the folder any more
    try:
        assert s.get(new_id).status in (QUEUED, INTERRUPTED)
    finally:
        s.close()
