"""Tab 1: text -> long video from a prompt timeline."""
from __future__ import annotations

import gradio as gr

from genl.jobs import forms

from . import common

EXAMPLE_PROMPTS = ["a jeep driving on the beach, sunny day", "a jeep driving on the beach at night"]


def create_demo(studio) -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.Markdown("Write what happens when: each row is a prompt for a stretch of the video. Clips of M "
                    "frames, S apart, are denoised together so the whole video stays consistent.")
        tl = common.timeline_editor(common.default_prompts(studio, EXAMPLE_PROMPTS), common.DEFAULTS.num_frames,
                                    common.DEFAULTS.fps)
        adv = common.advanced(studio, pipeline=True, max_frames=studio.max_frames)
        estimate = gr.Markdown(elem_classes=["genl-estimate"])
        with gr.Row():
            run = gr.Button("Generate", variant="primary")
            cancel = gr.Button("Cancel", variant="stop")
        view = common.job_view()

        form = common.Form(rows=tl["rows"], unit=tl["unit"]).add(**adv.components)
        common.wire_timeline(tl, adv["fps"], adv["num_frames"])

        watch = [tl["rows"], tl["unit"], adv["num_frames"], adv["fps"], adv["width"], adv["height"],
                 adv["steps"], adv["guidance"], adv["clip_length"], adv["stride"], adv["model"],
                 adv["pipeline"]]
        common.wire_job(studio, demo, form, forms.generate_settings, watch=watch, strip=tl["strip"],
                        estimate=estimate, view=view, run=run, cancel_button=cancel, api_name="generate")
    return demo
