"""Tab 4: pose / edge control: a long video from a prompt timeline that follows a reference video's pose,
edges or depth, through up to three ControlNets at once (e.g. pose + depth + edges), each with its strength and the
part of the schedule it acts in. Maps are extracted in the worker (cached), previewed as a strip of frames
over their maps and downloadable; a ready control video can be uploaded instead.
"""
from __future__ import annotations

import gradio as gr

from genl import forms
from genl.conditions.control_cache import DETECTOR_LABELS
from genl.controlnets import CONTROL_TYPES

from . import common
from .examples import add_examples
from .job_tab import job_tab, wire_upload_inspection

INTRO = ("Upload a reference video: the new video follows its **pose** (OpenPose skeletons), **edges** (Canny) "
         "or **depth** (Depth Anything) through ControlNets while your timeline says what to draw. Uses the "
         "tuning-free generator (an image model). With the demo model, pose comes from the bundled demo pose "
         "ControlNet (`assets/demo-pose-controlnet`), the maps read by the demo world's tiny pose estimator "
         "(stick figures only, a stand-in for OpenPose); edges from the demo edge ControlNet. Depth needs a real "
         "model. Try the example `assets/examples/stick_figure_walks.mp4`.")
DEMO_TARGETS = ["a red figure walking over grass", "a blue figure walking over sand"]
REAL_TARGETS = ["an astronaut dancing on the moon", "a robot dancing in a city"]
LENGTH_INFO = "Set from the reference video and fps; shorten it to use a part."


def source():
    with gr.Row():
        with gr.Column():
            upload = common.video_upload("Reference video (the motion to follow)")
            with gr.Row():
                fps = gr.Number(common.DEFAULTS.fps, label="Frames per second", minimum=1, maximum=60)
                control_type = gr.Dropdown(list(CONTROL_TYPES), value="pose", label="Control")
                preview_btn = gr.Button("Preview control maps")
            info = gr.Markdown("No video yet.", elem_classes=["genl-video-info"])
        with gr.Column():
            strip = gr.Image(label="Frames over their control maps", type="numpy", height=260, interactive=False)
            download = gr.File(label="Control video (download; upload it again as a ready control video)")
            note = gr.Markdown("", elem_classes=["genl-edge-note"])
    return (dict(control_video=upload, fps=fps, control_type=control_type),
            dict(info=info, preview=preview_btn, strip=strip, download=download, note=note))


# "" = the type's default; pose offers OpenPose body, body + hands, body + hands + face
DETECTOR_CHOICES = [("default for the type", "")] + [(label, name) for name, label in DETECTOR_LABELS.items()]


def _control_row(label: str, names: dict) -> dict:
    first = names is forms.FIRST_CONTROL
    with gr.Row():
        kind = None if first else gr.Dropdown(["none", *CONTROL_TYPES], value="none", label=label)
        detector = gr.Dropdown(DETECTOR_CHOICES, value="", label="Detector (pose: body, + hands, + face)")
        model = gr.Textbox("", label="ControlNet", placeholder="empty: the type's default (the demo's with the demo model)")
        strength = gr.Slider(0, 2, value=1.0, step=0.05, label="Strength")
        start = gr.Slider(0, 1, value=0.0, step=0.05, label="Start (fraction of steps)")
        end = gr.Slider(0, 1, value=1.0, step=0.05, label="End (fraction of steps)")
        maps = gr.File(label="Ready control video (optional)", file_types=["video"], type="filepath")
    parts = dict(model=model, strength=strength, start=start, end=end, video=maps, detector=detector)
    if kind is not None:
        parts["type"] = kind
    return {names[k]: v for k, v in parts.items()}


def extras():
    with gr.Accordion("Control settings", open=True):
        first = _control_row("Control", forms.FIRST_CONTROL)
        second = _control_row("Second control (e.g. depth with pose)", forms.SECOND_CONTROL)
        third = _control_row("Third control (e.g. edges with pose and depth)", forms.THIRD_CONTROL)
    return {**first, **second, **third}


def make(values):
    values["fps"] = values["fps"] or common.DEFAULTS.fps
    return forms.pose_control_settings(values)


def create_demo(studio) -> gr.Blocks:
    demo_default = common.pick_default_model(studio) == common.DEMO

    def preview(path, kind, model, f, w, h, detector=""):  # detector last: older API clients send six values
        try:
            got = studio.preview_controls(path, kind, model or "demo", detector=detector or "", fps=f or None,
                                          size=(int(w), int(h)) if w and h else None)
        except ValueError as err:
            raise common.user_error(err)
        return got["strip"], got["control_video"], got["note"]

    def wire(parts):
        form, adv, w = parts.form, parts.advanced, parts.widgets
        wire_upload_inspection(studio, parts, form["control_video"])
        w["preview"].click(preview, [form["control_video"], form["control_type"], adv["model"], form["fps"],
                                     adv["width"], adv["height"], form["detector"]],
                           [w["strip"], w["download"], w["note"]], api_name="control_preview")
        add_examples("pose", form, parts.view)

    return job_tab(studio, intro=INTRO, make=make, api_name="edge_control",
                   run_label="Generate following the control", prompts=DEMO_TARGETS if demo_default else REAL_TARGETS,
                   source=source, extras=extras, length_info=LENGTH_INFO, wire=wire)
