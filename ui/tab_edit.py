"""Tab 2: edit an uploaded video with a source prompt and a target timeline (tuning-free, Sec. 3.3)."""
from __future__ import annotations

import gradio as gr

from genl.jobs import forms

from . import common


def create_demo(studio) -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.Markdown("Upload a video, say what it shows (source prompt) and what it should become over time "
                    "(target timeline). The video is inverted once; the inversion is cached and reused while "
                    "the video, model and inversion settings stay the same.")
        with gr.Row():
            with gr.Column():
                upload, start, end, fps, info = common.trimmed_video_input(
                    "Video to edit (mp4, webm, mov, mkv, avi, gif)")
            samples = gr.Gallery(label="Frames the edit will use (a sample)", columns=4, height=260)
        source = gr.Textbox(label="Source prompt: what the video shows", placeholder="a man surfing a wave")
        tl = common.timeline_editor(common.default_prompts(studio, ["a robot surfing a wave",
                                                                    "a robot surfing a wave at sunset"]),
                                    common.DEFAULTS.num_frames, common.DEFAULTS.fps, label="Target timeline")
        adv = common.advanced(studio, pipeline=False, with_fps=False, max_frames=studio.max_frames,
                              length_info="Set from the uploaded video, its trim and fps.")
        strength = gr.Slider(0.1, 1.0, value=1.0, step=0.05, label="Edit strength (1 = full inversion)")
        estimate = gr.Markdown(elem_classes=["genl-estimate"])
        with gr.Row():
            run = gr.Button("Edit video", variant="primary")
            cancel = gr.Button("Cancel", variant="stop")
        view = common.job_view()

        form = common.Form(rows=tl["rows"], unit=tl["unit"], video=upload, source_prompt=source, start=start,
                           end=end, fps=fps, strength=strength).add(**adv.components)
        common.wire_timeline(tl, fps, adv["num_frames"])

        def inspect(path, a, b, f, model, rows, unit):
            return common.inspect_upload(studio, path, a, b, f, model, rows, unit)

        for trigger in (upload.change, start.change, end.change, fps.change):
            trigger(inspect, [upload, start, end, fps, adv["model"], tl["rows"], tl["unit"]],
                    [info, samples, adv["num_frames"], adv["width"], adv["height"], tl["rows"]],
                    show_progress="minimal", api_visibility="undocumented")

        def make(values):
            values["fps"] = values["fps"] or common.DEFAULTS.fps
            settings = forms.edit_settings(values)
            settings.strength = float(values["strength"])
            return settings

        watch = [tl["rows"], tl["unit"], adv["num_frames"], fps, adv["steps"], adv["clip_length"],
                 adv["stride"], strength]
        common.wire_job(studio, demo, form, make, watch=watch, strip=tl["strip"], estimate=estimate,
                        view=view, run=run, cancel_button=cancel, api_name="edit")
    return demo
