"""Tab 1: text -> long video from a prompt timeline."""
from __future__ import annotations

import gradio as gr

from genl import forms

from . import common
from .examples import add_examples
from .job_tab import job_tab

INTRO = ("Write what happens when: each row is a prompt for a stretch of the video. The video is drawn as short "
         "overlapping clips that are made together, so the whole video stays consistent.")
EXAMPLE_PROMPTS = ["a jeep driving on the beach, sunny day", "a jeep driving on the beach at night"]


def create_demo(studio) -> gr.Blocks:
    return job_tab(studio, intro=INTRO, make=forms.generate_settings, api_name="generate", run_label="Generate",
                   prompts=common.default_prompts(studio, EXAMPLE_PROMPTS), pipeline=True, quick_demo=True,
                   wire=lambda parts: add_examples("text", parts.form, parts.view))
