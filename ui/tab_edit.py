"""Tab 2: edit an uploaded video with a source prompt and a target timeline (tuning-free, Sec. 3.3)."""
from __future__ import annotations

import gradio as gr

from genl import forms

from . import common
from .examples import add_examples
from .job_tab import job_tab, wire_upload_inspection

INTRO = ("Upload a video, say what it shows (source prompt) and what it should become over time (target "
         "timeline). The video is inverted once; the inversion is cached and reused while the video, model and "
         "inversion settings stay the same.")
LENGTH_INFO = "Set from the uploaded video, its trim and fps."


def source():
    with gr.Row():
        with gr.Column():
            upload, start, end, fps, info = common.trimmed_video_input("Video to edit (mp4, webm, mov, mkv, avi, gif)")
        samples = gr.Gallery(label="Frames the edit will use (a sample)", columns=4, height=260)
    text = gr.Textbox(label="Source prompt: what the video shows", placeholder="a man surfing a wave")
    return (dict(video=upload, source_prompt=text, start=start, end=end, fps=fps),
            dict(info=info, samples=samples))


def extras():
    return dict(strength=gr.Slider(0.1, 1.0, value=1.0, step=0.05, label="Edit strength (1 = full inversion)"))


def make(values):
    values["fps"] = values["fps"] or common.DEFAULTS.fps
    settings = forms.edit_settings(values)
    settings.strength = float(values["strength"])
    return settings


def create_demo(studio) -> gr.Blocks:
    def wire(parts):
        wire_upload_inspection(studio, parts, parts.form["video"], start=parts.form["start"],
                               end=parts.form["end"], samples=parts.widgets["samples"])
        add_examples("edit", parts.form, parts.view)

    prompts = common.default_prompts(studio, ["a robot surfing a wave", "a robot surfing a wave at sunset"])
    return job_tab(studio, intro=INTRO, make=make, api_name="edit", run_label="Edit video", prompts=prompts,
                   timeline_label="Target timeline", source=source, extras=extras, length_info=LENGTH_INFO,
                   wire=wire)
