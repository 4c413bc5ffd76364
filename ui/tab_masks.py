"""Tab 3: edit anything: name an object, check its masks, and edit only inside them.

Outside the masks the result keeps the source video. The paper finds the object with GroundingDINO + SAM;
those are not installed here, so with the bundled demo model a colour segmentation stands in (shapes world
only), and the preview says which method made the masks. The preview runs as a light job in the queue.
"""
from __future__ import annotations

import gradio as gr

from genl import forms

from . import common
from .job_tab import job_tab, wire_upload_inspection

INTRO = ("Name an object (\"the red circle\"), check its masks on a few frames, then say what it should become. "
         "Only the masked pixels change; everything else stays as in the source video. Masks come from "
         "GroundingDINO + SAM, which are **not installed** in this studio: with the demo model a colour "
         "segmentation stands in (it only understands the demo's shapes world).")
DEMO_SOURCE = "a red circle moving right over grass"
DEMO_TARGETS = ["a yellow circle moving right over grass"]
REAL_TARGETS = ["a golden sports car"]
LENGTH_INFO = "Set from the uploaded video, its trim and fps."


def make(values):
    values["fps"] = values["fps"] or common.DEFAULTS.fps
    return forms.masked_edit_settings(values)


def extras():
    with gr.Row():
        strength = gr.Slider(0.1, 1.0, value=1.0, step=0.05, label="Edit strength (1 = full inversion)")
        keep_edges = gr.Checkbox(False, label="Keep the source's edges (ControlNet)",
                                 info="Holds the object's outline; needs a canny ControlNet.")
        controlnet = gr.Textbox("", label="ControlNet", placeholder="empty: the demo's with the demo model")
        control_scale = gr.Slider(0, 2, value=1.0, step=0.05, label="Edge strength")
    return dict(strength=strength, keep_edges=keep_edges, controlnet=controlnet, control_scale=control_scale)


def create_demo(studio) -> gr.Blocks:
    demo_default = common.pick_default_model(studio) == common.DEMO

    def source():
        with gr.Row():
            with gr.Column():
                upload, start, end, fps, info = common.trimmed_video_input(
                    "Video to edit (mp4, webm, mov, mkv, avi, gif)")
                with gr.Row():
                    obj = gr.Textbox("the red circle" if demo_default else "", label="Object to edit",
                                     placeholder="the red circle", scale=3)
                    method = gr.Dropdown(["auto", "colour", "grounded_sam"], value="auto", label="Mask method",
                                         info="auto: colour stand-in for the demo model, GroundingDINO + SAM "
                                              "for others.", scale=2)
                preview_btn = gr.Button("Preview masks")
            with gr.Column():
                frames = gr.Gallery(label="Masks on sampled frames (tinted magenta)", columns=4, height=260,
                                    elem_classes=["genl-masks"])
                note = gr.Markdown("Upload a video and press *Preview masks*.", elem_classes=["genl-mask-note"])
        text = gr.Textbox(DEMO_SOURCE if demo_default else "", label="Source prompt: what the video shows",
                          placeholder="a red car driving on a road")
        return (dict(video=upload, source_prompt=text, start=start, end=end, fps=fps, mask_object=obj,
                     mask_method=method),
                dict(info=info, preview=preview_btn, frames=frames, note=note))

    def preview(path, object_prompt, how, model, a, b, f, w, h):
        """The masks the job will use, on 4 frames; a mask that cannot be made is said in the label."""
        try:
            got = studio.preview_masks(path, object_prompt, model, how, fps=f or None, start=a or 0,
                                       end=b or None, size=(int(w), int(h)) if w and h else None)
        except ValueError as err:
            raise common.user_error(err)
        if not got["ok"]:
            gr.Warning(common.safe(got["note"]))
            return got["frames"], f"**No masks:** {common.safe(got['note'])}"
        return got["frames"], common.safe(got["note"])

    def wire(parts):
        form, adv, w = parts.form, parts.advanced, parts.widgets
        wire_upload_inspection(studio, parts, form["video"], start=form["start"], end=form["end"])
        w["preview"].click(preview, [form["video"], form["mask_object"], form["mask_method"], adv["model"],
                                     form["start"], form["end"], form["fps"], adv["width"], adv["height"]],
                           [w["frames"], w["note"]], api_name="mask_preview")

    return job_tab(studio, intro=INTRO, make=make, api_name="edit_anything", run_label="Edit inside the masks",
                   prompts=DEMO_TARGETS if demo_default else REAL_TARGETS,
                   timeline_label="What the object becomes (target timeline)", source=source, extras=extras,
                   length_info=LENGTH_INFO, wire=wire)
