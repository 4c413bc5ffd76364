"""Tab 4: edge / pose control: a long video from a prompt timeline that follows a reference video's edges.

The tuning-free generator (an image model with cross-frame attention) is conditioned through a ControlNet
on the Canny edges of each reference frame. Pose extraction (OpenPose / DWPose) is not installed here, and
the tab says so plainly instead of drawing made-up skeletons. The edge preview runs as a light job.
"""
from __future__ import annotations

import gradio as gr

from genl import forms
from genl.kinds.edge_preview import POSE_MISSING

from . import common
from .job_tab import job_tab, wire_upload_inspection

INTRO = ("Upload a reference video: the new video follows its **edges** (outlines and motion, Canny) through a "
         "ControlNet while your timeline says what to draw. Uses the tuning-free generator (an image model). "
         f"{POSE_MISSING} With the demo model, the bundled demo edge ControlNet is used "
         "(`assets/demo-controlnet`); jobs say plainly when it is not there yet.")
DEMO_TARGETS = ["a yellow star moving right over snow", "a purple star moving right over night"]
REAL_TARGETS = ["an astronaut dancing on the moon", "a robot dancing in a city"]
LENGTH_INFO = "Set from the reference video and fps; shorten it to use a part."


def source():
    with gr.Row():
        with gr.Column():
            upload = common.video_upload("Reference video (the motion to follow)")
            with gr.Row():
                fps = gr.Number(common.DEFAULTS.fps, label="Frames per second", minimum=1, maximum=60)
                preview_btn = gr.Button("Preview edges")
            info = gr.Markdown("No video yet.", elem_classes=["genl-video-info"])
        with gr.Column():
            frames = gr.Gallery(label="Edges of sampled frames (what the video follows)", columns=4,
                                height=260, elem_classes=["genl-edges"])
            note = gr.Markdown(POSE_MISSING, elem_classes=["genl-edge-note"])
    return dict(control_video=upload, fps=fps), dict(info=info, preview=preview_btn, frames=frames, note=note)


def extras():
    with gr.Row():
        controlnet = gr.Textbox("", label="ControlNet (edges)",
                                placeholder="empty: the demo's with the demo model; else a canny ControlNet")
        control_scale = gr.Slider(0, 2, value=1.0, step=0.05, label="Edge strength")
    return dict(controlnet=controlnet, control_scale=control_scale)


def make(values):
    values["fps"] = values["fps"] or common.DEFAULTS.fps
    return forms.edge_control_settings(values)


def create_demo(studio) -> gr.Blocks:
    demo_default = common.pick_default_model(studio) == common.DEMO

    def preview(path, f, w, h):
        try:
            got = studio.preview_edges(path, fps=f or None, size=(int(w), int(h)) if w and h else None)
        except ValueError as err:
            raise common.user_error(err)
        return got["frames"], got["note"]

    def wire(parts):
        form, adv, w = parts.form, parts.advanced, parts.widgets
        wire_upload_inspection(studio, parts, form["control_video"])
        w["preview"].click(preview, [form["control_video"], form["fps"], adv["width"], adv["height"]],
                           [w["frames"], w["note"]], api_name="edge_preview")

    return job_tab(studio, intro=INTRO, make=make, api_name="edge_control",
                   run_label="Generate following the edges", prompts=DEMO_TARGETS if demo_default else REAL_TARGETS,
                   source=source, extras=extras, length_info=LENGTH_INFO, wire=wire)
