"""The app end to end through gradio_client: real engine, tiny models, a real worker process."""
from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from conftest_app import ROOT

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


def text_job(server, **overrides):
    rows = overrides.pop("rows", [[0, 7, "a red circle moving left", ""], [8, 15, "a blue square moving right", ""]])
    params = dict(rows={"headers": ["from", "to", "prompt", "negative"], "data": rows, "metadata": None},
                  unit="frames", num_frames=16, fps=8, width=32, height=32, model=server.models["animatediff"],
                  seed=1, randomize=False, steps=3, guidance=7.5, scheduler="ddim", clip_length=8, stride=4,
                  weights="flat", negative_prompt="", pipeline="animatediff")
    params.update(overrides)
    return params


def status_of(html: str) -> str:
    return html.split('data-status="', 1)[1].split('"', 1)[0] if 'data-status="' in html else ""


def wait_job(client, job_id, timeout=90):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        details = client.predict(job_id, api_name="/job")
        if status_of(details[0]) in ("done", "failed", "cancelled"):
            return details
        time.sleep(0.3)
    raise TimeoutError(job_id)


def frames_in(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_generate_rerun_cancel_and_serve_again(server, client):
    # 1. a text -> video job streams progress and a preview, then gives a decodable mp4
    job = client.submit(**text_job(server), api_name="/generate")
    updates = list(job)
    assert job.status().success, job.status()
    statuses = [u[1] for u in updates]
    assert any("Denoise step" in s for s in statuses), statuses
    assert any(u[2] for u in updates), "no live preview arrived"
    job_id, final, _, video, files = updates[-1]
    assert status_of(final) == "done"
    assert frames_in(video) == 16
    assert any(str(f).endswith(".json") for f in files)

    # 2. re-run with the same settings from the Jobs tab
    new_id = client.predict(job_id, api_name="/rerun")[0]
    assert new_id != job_id
    details = wait_job(client, new_id)
    assert status_of(details[0]) == "done" and frames_in(details[2]) == 16
    original = client.predict(job_id, api_name="/job")[4]
    assert details[4] == original  # exactly the same settings JSON

    # 3. cancel another job mid-run
    slow = client.submit(**text_job(server, steps=150), api_name="/generate")
    slow_id = None
    end = time.monotonic() + 60
    while time.monotonic() < end:
        outs = slow.outputs()
        if outs and "Denoise step" in outs[-1][1]:
            slow_id = outs[-1][0]
            break
        time.sleep(0.1)
    assert slow_id, "the slow job never started denoising"
    t0 = time.monotonic()
    client.predict(slow_id, api_name="/cancel")
    slow.result(timeout=30)
    assert status_of(slow.outputs()[-1][1]) == "cancelled"
    assert time.monotonic() - t0 < 10
    assert status_of(client.predict(slow_id, api_name="/job")[0]) == "cancelled"

    # 4. the worker still serves a third job (the image-model pipeline this time)
    third = client.predict(**text_job(server, model=server.models["sd"], pipeline="tuning_free", steps=2),
                           api_name="/generate")
    assert status_of(third[1]) == "done" and frames_in(third[3]) == 16


@pytest.mark.parametrize("overrides, message", [
    (dict(rows=[[0, 5, "a cat", ""], [8, 15, "a dog", ""]]), "gap"),
    (dict(rows=[[0, 15, "   ", ""]]), "empty"),
    (dict(num_frames=-4), "length.*at least 1"),
    (dict(num_frames=100, rows=[[0, 99, "a cat", ""]]), "limit of 64 frames"),
    (dict(rows=[[4, 2, "a cat", ""]]), "before it starts"),
])
def test_bad_text_inputs_are_reported(server, client, overrides, message):
    with pytest.raises(AppError, match=message):
        client.predict(**text_job(server, **overrides), api_name="/generate")


def test_bad_uploads_are_reported(server, client, tmp_path):
    not_video = tmp_path / "notes.txt"
    not_video.write_text("this is not a video")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    # the upload box takes video types only, so Gradio itself refuses a .txt with a clear sentence
    for path, message in [(not_video, "not a video|Invalid file type"), (empty, "empty")]:
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(str(path)), "the red circle", "auto", 0.35, 0.25, "largest", 0, 8, 2, 1.5, None,
                           "demo", 0, 0, 8, 64, 64, api_name="/mask_preview")


def test_settings_tab_lists_models(server, client):
    rows, text = client.predict(api_name="/settings")
    names = [r[0] for r in rows["data"]]
    assert Path(server.models["animatediff"]).name in names and "demo" in names
    assert "cpu" in text and "64 frames" in text
    shown = str(rows) + text
    assert str(server.studio.outputs) not in shown and str(Path(server.models["sd"]).parent) not in shown


def test_edit_a_video(server, client, tmp_path):
    import numpy as np

    from genl.video_io import write_mp4

    ys, xs = np.mgrid[0:32, 0:32]
    frames = np.stack([np.stack([(xs * 8 + 6 * f) % 256, ys * 8, np.full_like(xs, 90)], -1)
                       for f in range(16)]).astype(np.uint8)
    src = write_mp4(frames, tmp_path / "clip.mp4", fps=8)
    params = dict(rows={"headers": ["from", "to", "prompt", "negative"], "metadata": None,
                        "data": [[0, 1, "a red circle on the sand", ""], [1, 2, "a red circle in the snow", ""]]},
                  unit="seconds", video=handle_file(str(src)), source_prompt="a red circle on grass", start=0, end=0,
                  fps=8, strength=1.0, num_frames=16, width=32, height=32, model=server.models["sd"], seed=0,
                  randomize=False, steps=2, guidance=7.5, scheduler="ddim", clip_length=8, stride=4,
                  weights="flat", negative_prompt="")
    job = client.submit(**params, api_name="/edit")
    updates = list(job)
    assert any("Inversion step" in u[1] for u in updates), [u[1] for u in updates]
    assert status_of(updates[-1][1]) == "done", updates[-1][1]
    assert frames_in(updates[-1][3]) == 16
    settings = client.predict(updates[-1][0], api_name="/job")[4]
    assert settings["kind"] == "edit" and "/uploads/" in settings["video"]  # the upload is kept with the outputs

    # a re-run finds the inversion in the cache: one "inversion" step instead of a full inversion
    again = client.predict(updates[-1][0], api_name="/rerun")[0]
    assert status_of(wait_job(client, again)[0]) == "done"
    inversion = [e for e in server.studio.events(again) if e["type"] == "progress" and e["stage"] == "inversion"]
    assert inversion and all(e["total"] == 1 for e in inversion), inversion


def test_only_outputs_are_served(server, client):
    import urllib.error
    import urllib.request

    inside = server.studio.results / "served-probe.txt"
    inside.write_text("ok")
    (server.studio.outputs.parent / "elsewhere.txt").write_text("private")
    (server.studio.outputs / "beside-results.txt").write_text("private")
    assert urllib.request.urlopen(f"{server.url}gradio_api/file={inside}", timeout=10).read() == b"ok"
    private = server.studio.private
    for secret in ("/etc/passwd", str(ROOT / "app.py"), str(server.studio.outputs.parent / "elsewhere.txt"),
                   str(server.studio.outputs / "beside-results.txt"), str(private / "jobs.sqlite"),
                   str(private / "studio.lock")):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{server.url}gradio_api/file={secret}", timeout=10)
        assert err.value.code in (403, 404)


def test_command_line(monkeypatch):
    import app

    args = app.parse_args([])
    assert (args.host, args.port, args.share, args.outputs) == ("127.0.0.1", 7860, False, "outputs")
    monkeypatch.setenv("GENL_AUTH", "alice:secret")
    assert app.parse_args([]).auth == "alice:secret"
    assert app.parse_args(["--auth", "bob:pw", "--max-frames", "32"]).max_frames == 32
    with pytest.raises(SystemExit):
        app.parse_args(["--auth", "no-colon"])
