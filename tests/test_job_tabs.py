"""The four job tabs share one skeleton, and each tab's estimate watches every input its settings use."""
from __future__ import annotations

import pytest

gr = pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from genl.jobs import Studio

    s = Studio(tmp_path_factory.mktemp("studio"), devices=["cpu"], threads=True, start=False)
    yield s
    s.store.close()  # never started: building tabs needs no worker


@pytest.mark.parametrize("tab,api_name", [("tab_text", "generate"), ("tab_edit", "edit"),
                                          ("tab_masks", "edit_anything"), ("tab_pose", "edge_control")])
def test_estimate_watches_every_input_of_the_job(studio, tab, api_name):
    import importlib

    demo = importlib.import_module(f"ui.{tab}").create_demo(studio)
    config = demo.get_config_file()
    blocks = {c["id"]: c for c in config["components"]}
    estimate = next(i for i, c in blocks.items() if "genl-estimate" in (c["props"].get("elem_classes") or []))
    run = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    watched = {t[0] for d in config["dependencies"] if estimate in d["outputs"] for t in d["targets"]
               if t[1] == "change"}
    inputs = set(run["inputs"])
    assert inputs and inputs <= watched, sorted(blocks[i]["props"].get("label") for i in inputs - watched)
    labels = {blocks[i]["props"].get("label") for i in watched}
    assert {"Model", "Width", "Height", "Guidance"} <= labels  # the Edit tab's estimate used to miss these


def _start_values(demo) -> dict:
    config = demo.get_config_file()
    return {c["props"].get("label"): c["props"].get("value") for c in config["components"]
            if c["props"].get("label") in ("Steps", "Scheduler", "Clip spacing (frames)", "Clip schedule", "Model",
                                           "Where clips are fused")}


def test_text_tab_starts_the_demo_model_with_its_fast_settings_and_other_tabs_do_not(studio):
    from ui import common, tab_edit, tab_text

    text = _start_values(tab_text.create_demo(studio))
    assert text["Model"] == common.DEMO  # this studio has no other model configured
    assert (text["Steps"], text["Scheduler"], text["Clip spacing (frames)"], text["Clip schedule"]) == (
        10, "dpm++", 16, "settled")
    assert text["Where clips are fused"] == "motion"
    edit = _start_values(tab_edit.create_demo(studio))
    assert "Where clips are fused" not in edit  # image models only: no fusion choice
    assert (edit["Steps"], edit["Scheduler"], edit["Clip spacing (frames)"], edit["Clip schedule"]) == (
        common.DEFAULTS.steps, common.DEFAULTS.scheduler, common.CN.stride, common.CN.schedule)


def test_sampling_settings_follow_the_model_unless_the_user_changed_them():
    from ui.common import DEMO_QUICK, SAMPLING_KEYS, VIDEO_FAST, fit_sampling_to_model

    video, quick = (tuple(d[k] for k in SAMPLING_KEYS) for d in (VIDEO_FAST, DEMO_QUICK))
    assert fit_sampling_to_model("demo", *video) == quick
    assert fit_sampling_to_model("guoyww/animatediff-motion-adapter-v1-5-2", *quick) == video
    assert fit_sampling_to_model("demo", 50.0, "ddim", 16.0, "settled", "motion") == quick  # Gradio floats
    changed = fit_sampling_to_model("demo", 30, "ddim", 16, "settled", "motion")  # the user's own steps stay
    assert all(u == gr.update() for u in changed)
    assert all(u == gr.update() for u in fit_sampling_to_model("demo", *quick))  # already fast: unchanged
    assert fit_sampling_to_model("demo", *video[:4]) == quick[:4]  # a tab without the fusion field


def test_fusion_inside_motion_modules_follows_the_generator():
    from ui.common import fit_fusion_to_generator

    assert fit_fusion_to_generator("tuning_free", 16, "settled", "motion") == "output"
    assert fit_fusion_to_generator("animatediff", 16.0, "settled", "output") == "motion"
    for args in (("animatediff", 4, "fixed", "output"),  # the user's own clips stay as they are
                 ("tuning_free", 4, "fixed", "output")):
        assert fit_fusion_to_generator(*args) == gr.update()


def test_the_video_fast_settings_are_valid_and_image_models_refuse_motion_fusion():
    from genl.settings import CoDenoiseSettings, GenerateSettings
    from ui.common import VIDEO_FAST

    cn = CoDenoiseSettings(stride=VIDEO_FAST["stride"], schedule=VIDEO_FAST["schedule"], fusion=VIDEO_FAST["fusion"])
    GenerateSettings(prompt="a red circle", num_frames=128, pipeline="animatediff", codenoise=cn).validate()
    with pytest.raises(ValueError, match="motion modules"):
        GenerateSettings(prompt="a red circle", num_frames=128, pipeline="tuning_free", codenoise=cn).validate()


def test_the_demo_fast_settings_are_valid_settings():
    from genl.settings import CoDenoiseSettings, GenerateSettings
    from ui.common import DEMO_QUICK

    s = GenerateSettings(prompt="a red circle moving right over grass", num_frames=64, width=128, height=128,
                         steps=DEMO_QUICK["steps"], scheduler=DEMO_QUICK["scheduler"],
                         codenoise=CoDenoiseSettings(stride=DEMO_QUICK["stride"], schedule=DEMO_QUICK["schedule"],
                                                     fusion=DEMO_QUICK["fusion"]))
    s.validate()
