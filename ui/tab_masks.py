"""Tab 3: edit anything: name an object, check its masks, and edit only inside them.

Outside the masks the result keeps the source video. As in the paper, GroundingDINO finds the object (boxes on
keyframes) and SAM 2 carries its masks through the video; with the demo model the same code runs on tiny
detectors trained on the shapes world. A mask video may be uploaded instead. The preview runs as a light job in the
queue, over the whole trimmed video, and its masks are cached for the edit.
"""
from __future__ import annotations

import gradio as gr

from genl import forms
from genl.conditions.mask_settings import INSTANCES, METHODS, MaskSettings

from . import common
from .examples import add_examples
from .job_tab import job_tab, wire_upload_inspection

INTRO = ("Name an object (\"the red circle\"), check its masks on a few frames, then say what it should become. "
         "Only the masked pixels change; everything else stays as in the source video. Masks come from "
         "GroundingDINO (boxes on keyframes) + SAM 2 (tracked between them); with the demo model they are tiny "
         "ones trained on the demo's shapes world, so they only know its colours and shapes. You can also upload "
         "a mask video (white where the edit may change the video).")
METHOD_INFO = ("auto: GroundingDINO + SAM 2 (the tiny shapes-world ones with the demo model); grounded_sam2: "
               "always the detectors; sam3: SAM 3 finds and tracks the object by itself (facebook/sam3); colour: "
               "shapes world only; upload: your mask video.")
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


def mask_inputs(demo_default: bool) -> dict:
    """The object prompt, the mask method and its Advanced settings (defaults from MaskSettings) and the
    mask-video upload: the names forms.mask_settings reads."""
    d = MaskSettings()
    with gr.Row():
        obj = gr.Textbox("the red circle" if demo_default else "", label="Object to edit",
                         placeholder="the red circle", scale=3)
        method = gr.Dropdown(list(METHODS), value=d.method, label="Mask method", info=METHOD_INFO, scale=2)
    with gr.Accordion("Mask settings", open=False):
        with gr.Row():
            box = gr.Slider(0.05, 0.95, value=d.box_threshold, step=0.05, label="Box threshold",
                            info="GroundingDINO: lowest box score kept (left at 0.35, the demo model's "
                                 "detectors use their own 0.25 and segment each frame; the note says so)")
            text = gr.Slider(0.05, 0.95, value=d.text_threshold, step=0.05, label="Text threshold",
                             info="GroundingDINO: lowest score of the prompt's words")
        with gr.Row():
            instance = gr.Dropdown(list(INSTANCES), value=d.instance, label="Which instance",
                                   info="largest box, all of them, or one by rank (index)")
            index = gr.Number(d.index, label="Instance index (0 = highest score)", minimum=0, precision=0)
            every = gr.Slider(1, 64, value=d.keyframe_every, step=1, label="Keyframe every K frames",
                              info="detect on these frames (and where tracking weakens); SAM 2 tracks between")
        with gr.Row():
            dilate = gr.Slider(0, 32, value=d.dilate, step=1, label="Dilate (px)", info="grow the mask")
            feather = gr.Slider(0, 16, value=d.feather, step=0.5, label="Feather (px)", info="soften its edge")
        mask_video = gr.File(label="Or upload a mask video (white = edit; replaces the detectors)",
                             file_types=["video"], type="filepath")
    return dict(mask_object=obj, mask_method=method, box_threshold=box, text_threshold=text, instance=instance,
                instance_index=index, keyframe_every=every, dilate=dilate, feather=feather, mask_video=mask_video)


MASK_KEYS = ("mask_object", "mask_method", "box_threshold", "text_threshold", "instance", "instance_index",
             "keyframe_every", "dilate", "feather", "mask_video")


def create_demo(studio) -> gr.Blocks:
    demo_default = common.pick_default_model(studio) == common.DEMO

    def source():
        with gr.Row():
            with gr.Column():
                upload, start, end, fps, info = common.trimmed_video_input(
                    "Video to edit (mp4, webm, mov, mkv, avi, gif)")
                masks = mask_inputs(demo_default)
                preview_btn = gr.Button("Preview masks")
            with gr.Column():
                frames = gr.Gallery(label="Masks on sampled frames (tinted magenta)", columns=4, height=260,
                                    elem_classes=["genl-masks"])
                note = gr.Markdown("Upload a video and press *Preview masks*.", elem_classes=["genl-mask-note"])
                download = gr.File(label="Mask video (white = edited)", interactive=False)
        text = gr.Textbox(DEMO_SOURCE if demo_default else "", label="Source prompt: what the video shows",
                          placeholder="a red car driving on a road")
        return (dict(video=upload, source_prompt=text, start=start, end=end, fps=fps, **masks),
                dict(info=info, preview=preview_btn, frames=frames, note=note, download=download))

    def preview(path, *args):
        """The masks the job will use, on 4 frames, and the whole mask video; a mask that cannot be made is
        said in the note."""
        values = dict(zip(MASK_KEYS, args))
        model, a, b, f, w, h = args[len(MASK_KEYS):]
        try:
            got = studio.preview_masks(path, values["mask_object"] or "", model, fps=f or None, start=a or 0,
                                       end=b or None, size=(int(w), int(h)) if w and h else None,
                                       masks=forms.mask_settings(values))
        except ValueError as err:
            raise common.user_error(err)
        if not got["ok"]:
            gr.Warning(common.safe(got["note"]))
            return got["frames"], f"**No masks:** {common.safe(got['note'])}", None
        return got["frames"], common.safe(got["note"]), got["mask_video"]

    def wire(parts):
        form, adv, w = parts.form, parts.advanced, parts.widgets
        wire_upload_inspection(studio, parts, form["video"], start=form["start"], end=form["end"])
        w["preview"].click(preview, [form["video"], *(form[k] for k in MASK_KEYS), adv["model"], form["start"],
                                     form["end"], form["fps"], adv["width"], adv["height"]],
                           [w["frames"], w["note"], w["download"]], api_name="mask_preview")
        add_examples("masks", form, parts.view)

    return job_tab(studio, intro=INTRO, make=make, api_name="edit_anything", run_label="Edit inside the masks",
                   prompts=DEMO_TARGETS if demo_default else REAL_TARGETS,
                   timeline_label="What the object becomes (target timeline)", source=source, extras=extras,
                   length_info=LENGTH_INFO, wire=wire)
