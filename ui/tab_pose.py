"""Tab 4: edge / pose control: a long video from a prompt timeline that follows a reference video's edges.

The tuning-free generator (an image model with cross-frame attention) is conditioned through a ControlNet
on the Canny edges of each reference frame. Pose extraction (OpenPose / DWPose) is not installed here, and
the tab says so plainly instead of drawing made-up skeletons.
"""
from __future__ import annotations

import gradio as gr

from genl.jobs import forms

from . import common

INTRO = ("Upload a reference video: the new video follows its **edges** (outlines and motion, Canny) through a "
         "ControlNet while your timeline says what to draw. Uses the tuning-free generator (an image model). "
         f"{forms.POSE_MISSING} With the demo model, the bundled demo edge ControlNet is used "
         "(`assets/demo-controlnet`); jobs say plainly when it is not there yet.")
DEMO_TARGETS = ["a yellow star moving right over snow", "a purple star moving right over night"]
REAL_TARGETS = ["an astronaut dancing on the moon", "a robot dancing in a city"]


def create_demo(studio) -> gr.Blocks:
    demo_default = common.pick_default_model(studio) == common.DEMO
    with gr.Blocks() as demo:
        gr.Markdown(INTRO)
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
                note = gr.Markdown(forms.POSE_MISSING, elem_classes=["genl-edge-note"])
        tl = common.timeline_editor(DEMO_TARGETS if demo_default else REAL_TARGETS, common.DEFAULTS.num_frames,
                                    common.DEFAULTS.fps)
        adv = common.advanced(studio, pipeline=False, with_fps=False, max_frames=studio.max_frames,
                              length_info="Set from the reference video and fps; shorten it to use a part.")
        with gr.Row():
            controlnet = gr.Textbox("", label="ControlNet (edges)",
                                    placeholder="empty: the demo's with the demo model; else a canny ControlNet")
            control_scale = gr.Slider(0, 2, value=1.0, step=0.05, label="Edge strength")
        estimate = gr.Markdown(elem_classes=["genl-estimate"])
        with gr.Row():
            run = gr.Button("Generate following the edges", variant="primary")
            cancel = gr.Button("Cancel", variant="stop")
        view = common.job_view()

        form = common.Form(rows=tl["rows"], unit=tl["unit"], control_video=upload, fps=fps, controlnet=controlnet,
                           control_scale=control_scale).add(**adv.components)
        common.wire_timeline(tl, fps, adv["num_frames"])

        def inspect(path, f, model, rows, unit):
            info_text, _, *rest = common.inspect_upload(studio, path, 0, None, f, model, rows, unit)
            return (info_text, *rest)

        for trigger in (upload.change, fps.change):
            trigger(inspect, [upload, fps, adv["model"], tl["rows"], tl["unit"]],
                    [info, adv["num_frames"], adv["width"], adv["height"], tl["rows"]],
                    show_progress="minimal", api_visibility="undocumented")

        def preview(path, f, w, h):
            try:
                got = studio.preview_edges(path, fps=f or None, size=(int(w), int(h)) if w and h else None)
            except ValueError as err:
                raise common.user_error(err)
            return got["frames"], got["note"]

        preview_btn.click(preview, [upload, fps, adv["width"], adv["height"]], [frames, note],
                          api_name="edge_preview")

        def make(values):
            values["fps"] = values["fps"] or common.DEFAULTS.fps
            return forms.edge_control_settings(values)

        watch = [tl["rows"], tl["unit"], adv["num_frames"], fps, adv["width"], adv["height"], adv["steps"],
                 adv["clip_length"], adv["stride"], adv["model"]]
        common.wire_job(studio, demo, form, make, watch=watch, strip=tl["strip"], estimate=estimate,
                        view=view, run=run, cancel_button=cancel, api_name="edge_control")
    return demo
