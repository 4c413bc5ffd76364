"""Tab 3: edit anything: mask an object (GroundingDINO + SAM) and edit only inside the masks.

The masking models arrive in a later issue. Until then the tab keeps its shape (upload, object, preview
area, prompt) and says plainly what is missing; it never shows made-up masks.
"""
from __future__ import annotations

import importlib.util

import gradio as gr

from genl.jobs import forms

from . import common

MISSING = ("**Masks are not available yet.** Edit-anything needs GroundingDINO (to find the object from "
           "your words) and Segment Anything (to cut it out); {missing} not installed in this studio, and the "
           "masked editing pipeline comes in a later release. Until then, use the *Edit a video* tab to edit "
           "the whole frame.")


def missing_models() -> list[str]:
    names = {"groundingdino": "GroundingDINO", "segment_anything": "Segment Anything (SAM)"}
    return [label for module, label in names.items() if importlib.util.find_spec(module) is None]


def missing_message() -> str:
    missing = missing_models() or ["the models are installed but"]
    verb = "is" if len(missing) == 1 else "are"
    return MISSING.format(missing=" and ".join(missing) + f" {verb}")


def sample_frames(studio, path):
    """Show the frames masks would be computed on; every problem with the file is a visible message."""
    if not path:
        raise common.user_error(ValueError("Upload a video first."))
    try:
        got = forms.inspect_video(path, max_frames=studio.max_frames)
    except ValueError as err:
        raise common.user_error(err)
    return got["samples"], missing_message()


def create_demo(studio) -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.Markdown(missing_message(), elem_classes=["genl-missing"])
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Video", file_count="single")
                gr.Textbox(label="Object to edit", placeholder="the red car")
                preview_btn = gr.Button("Preview masks on sampled frames")
            with gr.Column():
                frames = gr.Gallery(label="Sampled frames (masks will be drawn here)", columns=4, height=260)
                note = gr.Markdown()
        gr.Textbox(label="What the object should become", placeholder="a golden sports car",
                            interactive=False, info="Available once the masking models are installed.")
        gr.Button("Edit inside the masks", variant="primary", interactive=False)
        preview_btn.click(lambda path: sample_frames(studio, path), [upload], [frames, note], api_name="mask_preview")
    return demo
