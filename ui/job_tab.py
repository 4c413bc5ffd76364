"""The skeleton every job tab shares (Text2Video-Zero's one-file-per-tab, with the common part written once):

    intro · source (upload, trim, preview: optional) · timeline · Advanced · extra settings ·
    estimate · run · cancel · job view (status, live preview, result)

A tab supplies what differs: its source block, its extra settings, the settings builder (genl/forms.py) and
the wiring of its own widgets (upload inspection, preview buttons). The windows strip and the estimate
watch every input of the form, so they never go stale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import gradio as gr

from . import common


@dataclass
class TabParts:
    """What a tab's `wire` callback gets: the form (named inputs), the timeline editor, the Advanced form
    and the source block's other widgets (galleries, buttons, notes)."""

    form: common.Form
    timeline: common.Form
    advanced: common.Form
    widgets: common.Form
    view: Optional[common.Form] = None  # the job view (status, preview, result), e.g. for examples' results


def job_tab(studio, *, intro: str, make: Callable[[dict], object], api_name: str, run_label: str, prompts,
            timeline_label: str = "Prompt timeline", source: Optional[Callable[[], tuple]] = None,
            extras: Optional[Callable[[], dict]] = None, pipeline: bool = False, length_info: str = "",
            quick_demo: bool = False, wire: Optional[Callable[[TabParts], None]] = None) -> gr.Blocks:
    """source() -> (inputs, widgets) dicts, built above the timeline; extras() -> inputs, built below
    Advanced; make(values) -> settings, values being every input by name plus "prompt" (the timeline as
    text)."""
    with gr.Blocks() as demo:
        gr.Markdown(intro)
        src, widgets = source() if source else ({}, {})
        tl = common.timeline_editor(prompts, common.DEFAULTS.num_frames, common.DEFAULTS.fps, label=timeline_label)
        adv = common.advanced(studio, pipeline=pipeline, with_fps="fps" not in src, max_frames=studio.max_frames,
                              length_info=length_info, quick_demo=quick_demo)
        more = extras() if extras else {}
        estimate = gr.Markdown(elem_classes=["genl-estimate"])
        with gr.Row():
            run = gr.Button(run_label, variant="primary")
            cancel = gr.Button("Cancel this job", variant="secondary", elem_classes=["genl-cancel"])
        view = common.job_view()

        form = common.Form(rows=tl["rows"], unit=tl["unit"], **src, **more).add(**adv.components)
        common.wire_timeline(tl, form["fps"], adv["num_frames"])
        if wire is not None:
            wire(TabParts(form, tl, adv, common.Form(**widgets), view))
        common.wire_job(studio, demo, form, make, watch=form.inputs, strip=tl["strip"], estimate=estimate,
                        view=view, run=run, cancel_button=cancel, api_name=api_name)
    # what the Jobs tab fills from a job's settings (ui/job_values.py names them as forms.py reads them)
    demo.loadable = common.Form(**form.components, prev_unit=tl["prev_unit"])
    return demo


def wire_upload_inspection(studio, parts: TabParts, upload, *, start=None, end=None, samples=None) -> None:
    """On upload or trim: count the frames, show samples, size the output and spread the timeline rows
    (common.inspect_upload), for tabs whose length comes from a video."""
    form, tl, adv = parts.form, parts.timeline, parts.advanced
    fps = form["fps"]
    trims = [c for c in (start, end) if c is not None]

    def inspect(path, *args):
        a, b = (args[0], args[1]) if trims else (0, None)
        f, model, rows, unit, w, h = args[len(trims):]
        info, shown, *rest = common.inspect_upload(studio, path, a, b, f, model, rows, unit, (w, h))
        return (info, shown, *rest) if samples is not None else (info, *rest)

    outputs = [parts.widgets["info"]] + ([samples] if samples is not None else [])
    outputs += [adv["num_frames"], adv["width"], adv["height"], tl["rows"]]
    inputs = [upload, *trims, fps, adv["model"], tl["rows"], tl["unit"], adv["width"], adv["height"]]
    for comp in [upload, *trims, fps]:
        comp.change(inspect, inputs, outputs, show_progress="minimal", api_visibility="undocumented")
