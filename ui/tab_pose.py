"""Tab 4: pose control: extract poses from a reference video and follow them with a prompt timeline.

Pose extraction (DWPose/OpenPose) and the pose ControlNet arrive in a later issue. Until then the tab
keeps its shape and says plainly what is missing; it never shows made-up skeletons.
"""
from __future__ import annotations

import importlib.util

import gradio as gr

from genl.jobs import forms

from . import common
from .strip import render_strip
from .tab_masks import sample_frames as _sample_frames

MISSING = ("**Pose control is not available yet.** It needs a pose extractor (DWPose or OpenPose, e.g. from "
           "`controlnet_aux`) and an OpenPose ControlNet for the image model; {state}. The pose-conditioned "
           "pipeline comes in a later release. You can already upload a reference video and check its frames.")


def missing_message() -> str:
    have = importlib.util.find_spec("controlnet_aux") is not None
    return MISSING.format(state="the extractor is installed but the pipeline is not" if have
                          else "neither is installed in this studio")


def create_demo(studio) -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.Markdown(missing_message(), elem_classes=["genl-missing"])
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Reference video (the motion to follow)", file_count="single")
                preview_btn = gr.Button("Preview poses")
            with gr.Column():
                frames = gr.Gallery(label="Sampled frames (poses will be drawn here)", columns=4, height=260)
                note = gr.Markdown()
        with gr.Row():
            num_frames = gr.Number(common.DEFAULTS.num_frames, label="Length (frames)", precision=0)
            fps = gr.Number(common.DEFAULTS.fps, label="Frames per second", minimum=1, maximum=60)
        tl = common.timeline_editor(["an astronaut dancing on the moon", "a robot dancing in a city"],
                                    common.DEFAULTS.num_frames, common.DEFAULTS.fps)
        common.wire_timeline(tl, fps, num_frames)
        gr.Button("Generate with poses", variant="primary", interactive=False)

        def strip(rows, unit, f, n):
            data = forms.strip_data(rows, unit, float(f or 8), int(n or 1), common.CN.clip_length, common.CN.stride)
            return render_strip(data, float(f or 8))

        for comp in (tl["rows"], tl["unit"], fps, num_frames):
            comp.change(strip, [tl["rows"], tl["unit"], fps, num_frames], tl["strip"], **common.HIDDEN)
        demo.load(strip, [tl["rows"], tl["unit"], fps, num_frames], tl["strip"], **common.HIDDEN)

        def preview(path):
            samples, _ = _sample_frames(studio, path)
            return samples, missing_message()

        preview_btn.click(preview, [upload], [frames, note], api_name="pose_preview")
    return demo
