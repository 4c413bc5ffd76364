"""The "tune" job kind, tuned edits through the edit kind, the CLI wiring and the tune tab, on tiny models."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from genl.api import run_job
from genl.jobs import events
from genl.progress import Cancelled
from genl.settings import CoDenoiseSettings, EditSettings, settings_from_dict
from genl.tuning.settings import TuneSettings
from genl.tuning.store import TuningStore

PROMPT = "0-5: a red square moving right | 6-11: a blue square moving right"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from genl.video_io import write_mp4

    y, x = np.mgrid[0:32, 0:32]
    frames = []
    for f in range(12):
        img = np.stack([x * 4, y * 4, np.full_like(x, 60)], -1).astype(np.uint8)
        img[10:20, 2 + f * 2:10 + f * 2] = (230, 40, 40) if f < 6 else (40, 40, 230)
        frames.append(img)
    return str(write_mp4(np.stack(frames), tmp_path_factory.mktemp("video") / "square.mp4", fps=8))


def tune_settings(video, model, store, **kw):
    base = dict(video=video, prompt=PROMPT, model=model, clip_length=4, stride=2, width=32, height=32, fps=8,
                batch_size=2, max_steps=2, checkpoint_every=1, learning_rate=1e-3, store_dir=str(store))
    return TuneSettings(**dict(base, **kw))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_models, model_manager, video):
    """One 2-step tuning through run_job, with its progress events; shared by the edit tests."""
    root = tmp_path_factory.mktemp("tune")
    seen = []
    out = run_job(tune_settings(video, tiny_models["sd"], root / "store"), root / "job", progress=seen.append,
                  models=model_manager)
    return out, seen, root


def test_tune_kind_runs_through_run_job_and_stores_the_tuning(tuned):
    out, seen, root = tuned
    assert [(e["stage"], e["step"], e["total"]) for e in seen] == [("tune", 1, 2), ("tune", 2, 2)]
    assert all(np.isfinite(e["loss"]) and e["rate"] > 0 for e in seen)
    (entry,) = TuningStore(root / "store").list()
    assert entry["folder"] == out["tuning"] and entry["finished"] and entry["step"] == 2
    assert out["num_frames"] == 12 and out["video"].endswith("video.mp4")  # the footage it learned from
    assert "Tuned for 2 steps" in out["notices"][-1]


def test_tune_progress_reaches_the_browser_with_loss_and_one_eta(tuned):
    _, seen, _ = tuned
    ev = events.engine_progress("j", seen[0], events.overall_fraction("tune", "tune", 1, 2), None)
    assert ev["loss"] == seen[0]["loss"] and ev["eta"] == seen[0]["eta"] and 0 < ev["fraction"] < 1
    assert "loss" in events.describe(ev) and "steps/s" in events.describe(ev)


def test_cancel_keeps_a_usable_tuning_and_the_same_settings_resume(tmp_path, tiny_models, model_manager, video):
    settings = tune_settings(video, tiny_models["sd"], tmp_path / "store", max_steps=3, seed=5)
    seen = []

    def progress(event):
        seen.append(event)
        if event["step"] == 1:
            raise Cancelled("The job was cancelled.")  # as the worker's progress callback does

    with pytest.raises(Cancelled):
        run_job(settings, tmp_path / "a", progress=progress, models=model_manager)
    (entry,) = TuningStore(tmp_path / "store").list()
    assert entry["step"] == 1 and not entry["finished"]
    edit = EditSettings(video=video, tuned=entry["folder"], prompt=PROMPT, steps=1, model=tiny_models["sd"],
                        codenoise=CoDenoiseSettings(clip_length=4, stride=2))
    assert run_job(edit, tmp_path / "edit", models=model_manager, save_frames=False)["num_frames"] == 12
    again = []
    out = run_job(dataclasses.replace(settings), tmp_path / "b", progress=again.append, models=model_manager)
    assert [e["step"] for e in again] == [2, 3]  # resumed after step 1, same folder
    assert out["tuning"] == entry["folder"] and TuningStore(tmp_path / "store").list()[0]["finished"]


@pytest.mark.parametrize("from_noise,use_identifiers", [(False, True), (True, False)])
def test_edit_with_a_tuning(tuned, tiny_models, model_manager, video, tmp_path, from_noise, use_identifiers):
    out, _, _ = tuned
    settings = EditSettings(video="" if from_noise else video, tuned=out["tuning"], from_noise=from_noise,
                            use_identifiers=use_identifiers, prompt="0-11: a green square moving right",
                            steps=2, model="demo", codenoise=CoDenoiseSettings(clip_length=4, stride=2))
    seen = []
    result = run_job(settings, tmp_path, progress=seen.append, models=model_manager, save_frames=False)
    assert result["num_frames"] == 12
    stages = {e["stage"] for e in seen}
    assert ("inversion" in stages) != from_noise and "denoise" in stages
    assert any("uses it" in n for n in result["notices"])  # the tuning's model replaced 'demo'
    assert any(("without" in n) != use_identifiers for n in result["notices"] if "clip identifiers" in n)


def test_tuned_edit_settings_are_checked_in_plain_words(tuned, model_manager, video, tmp_path):
    with pytest.raises(ValueError, match="needs a tuned model"):
        EditSettings(video=video, source_prompt="x", prompt="y", from_noise=True).validate()
    with pytest.raises(ValueError, match="No tuning called"):
        run_job(EditSettings(video=video, tuned="nope", prompt="y"), tmp_path, models=model_manager)
    with pytest.raises(ValueError, match="Object masks and edge control"):
        run_job(EditSettings(video=video, tuned=tuned[0]["tuning"], prompt="y", mask_object="the square"),
                tmp_path, models=model_manager)


def test_tune_settings_travel_as_a_job_spec(video):
    from genl.jobs.spec import JobSpec

    spec = JobSpec.from_settings(TuneSettings(video=video, prompt=PROMPT, clip_length=4, stride=2, end=1.5))
    back = spec.to_settings()
    assert isinstance(back, TuneSettings) and back.end == 1.5 and spec.kind == "tune"
    with pytest.raises(ValueError, match="identifier dropout"):
        JobSpec.from_settings(settings_from_dict(dict(spec.settings, identifier_dropout=float("nan"))))


def test_cli_parses_tune_and_edit_tuned(tmp_path):
    from genl.cli import build_parser, main, settings_from_args
    from genl.tuning.cli import settings_from_args as tune_from_args

    args = build_parser().parse_args(["tune", "--video", "v.mp4", "--prompt", PROMPT, "--method", "full",
                                      "--epochs", "3", "--identifier-dropout", "0", "--end", "2"])
    s = tune_from_args(args)
    assert (s.method, s.epochs, s.identifier_dropout, s.end, s.store_dir) == ("full", 3, 0.0, 2.0, "outputs/tunings")
    args = build_parser().parse_args(["edit", "--tuned", "abc", "--prompt", "a dog", "--from-noise",
                                      "--no-identifiers"])
    e = settings_from_args(args)
    assert (e.tuned, e.from_noise, e.use_identifiers, e.source_prompt, e.video) == ("abc", True, False, "", "")
    assert main(["edit", "--tuned", str(tmp_path / "none"), "--prompt", "a dog", "--out", str(tmp_path)]) == 2
    assert main(["tune", "--video", str(tmp_path / "none.mp4"), "--prompt", "x", "--store", str(tmp_path)]) == 2


def test_tune_tab_builds(tmp_path, tuned):
    pytest.importorskip("gradio")
    import shutil

    from genl.jobs import Studio
    from ui import tab_tune

    studio = Studio(tmp_path / "studio", devices=["cpu"], threads=True, start=False)
    try:
        shutil.copytree(tuned[0]["tuning"], studio.tunings_dir / "k1")
        assert [t["key"] for t in studio.tunings()] == ["k1"]
        demo = tab_tune.create_demo(studio)
        config = demo.get_config_file()
        names = {d.get("api_name") for d in config["dependencies"]}
        assert {"tune", "tuned_edit"} <= names
        types = {c["type"] for c in config["components"]}
        assert {"nativeplot", "dataframe", "dropdown"} <= types or {"lineplot", "dataframe", "dropdown"} <= types, types
        assert tab_tune.tuning_choices(studio) == [(tab_tune.tuning_label(studio.tunings()[0]), "k1")]
    finally:
        studio.store.close()
