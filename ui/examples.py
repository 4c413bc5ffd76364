"""Clickable examples for the job tabs: each fills every field of its tab and shows a result made ahead.

AnimateDiff's demo shows cached results and Rerender's full configs; ours do both. An example is plain data
(the tab's form values by name, as `make(values)` reads them) plus the file of its result, rendered once with
the demo model by `assets/examples/make_results.py` from exactly these values, so a click costs no job.
`tests/test_examples.py` checks each example validates and that its result matches its settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT / "assets" / "examples"
RESULTS = VIDEOS / "results"
SHOWN = "Example result, made ahead with these settings (no job ran). Press the button to make it again."

# What every example sets on the shared Advanced form: the demo model at its own 128x128, short and cheap
# enough to make on a CPU, with clips overlapping (S = M/2) so the result shows co-denoising.
DEMO_ADVANCED = dict(num_frames=32, fps=8.0, width=128, height=128, model="demo", seed=3, randomize=False,
                     steps=8, guidance=7.5, scheduler="ddim", clip_length=16, stride=8, weights="flat",
                     schedule="fixed", negative_prompt="", unit="seconds")


@dataclass(frozen=True)
class Example:
    """One example of a tab: a label, the form values it fills (names of the tab's form) and its result."""

    tab: str  # "text", "edit", "masks", "pose": the ui/tab_<name>.py module
    name: str  # the result's file stem under assets/examples/results
    label: str
    values: dict = field(default_factory=dict)

    @property
    def result(self) -> Path:
        return RESULTS / f"{self.name}.mp4"

    @property
    def settings_file(self) -> Path:
        return RESULTS / f"{self.name}.json"

    def form_values(self) -> dict:
        """The values the click puts in the form: the demo's Advanced settings, then the example's own."""
        return {**DEMO_ADVANCED, **self.values}


def _video(name: str) -> str:
    return str(VIDEOS / name)


EXAMPLES = [
    Example("text", "text_circle_to_square", "Red circle on grass, then a blue square on sand", dict(
        pipeline="animatediff",
        rows=[[0, 2, "a red circle moving right over grass", ""], [2, 4, "a blue square moving left over sand", ""]])),
    Example("edit", "edit_circle_to_yellow", "Recolour the circle: yellow, then green", dict(
        video=_video("red_circle_grass.mp4"), source_prompt="a red circle moving right over grass",
        start=0.0, end=4.0, strength=1.0,
        rows=[[0, 2, "a yellow circle moving right over grass", ""],
              [2, 4, "a green circle moving right over grass", ""]])),
    Example("masks", "masks_square_to_red", "Only the square turns red (edges kept)", dict(
        video=_video("blue_square_sand.mp4"), source_prompt="a blue square bouncing over sand", start=0.0,
        end=4.0, mask_object="the blue square", mask_method="auto", strength=1.0, keep_edges=True,
        controlnet="", control_scale=1.0,
        rows=[[0, 4, "a red square bouncing over sand", ""]])),
    Example("pose", "pose_figure_walks", "A stick figure's walk: red on grass, then blue on sand", dict(
        control_video=_video("stick_figure_walks.mp4"), control_type="pose", controlnet="", control_scale=1.0,
        control_start=0.0, control_end=1.0, second_type="none",
        rows=[[0, 2, "a red figure walking over grass", ""], [2, 4, "a blue figure walking over sand", ""]])),
]


def tab_examples(tab: str) -> list[Example]:
    return [e for e in EXAMPLES if e.tab == tab]


def add_examples(tab: str, form, view) -> None:
    """gr.Examples under a tab's job view: a click fills every field of `form` (values the example leaves out
    keep the field's initial value) and puts the result made ahead, with a note, in the job view. Examples
    whose result file is missing are left out (a checkout without assets/examples/results)."""
    import gradio as gr

    from .common import status_html

    shown = [e for e in tab_examples(tab) if e.result.exists()]
    if not shown:
        return
    from .job_values import FILE_FIELDS

    # uploads are set after the other fields: an upload's inspection keeps timeline rows that fit the video, so
    # it must see the example's rows, not the tab's old ones (Gradio fires the upload's change meanwhile)
    names = [n for n in form.components if n not in FILE_FIELDS]
    files = [n for n in form.components if n in FILE_FIELDS]
    rows = []
    for e in shown:
        values = e.form_values()
        rows.append([values.get(n, form[n].value) for n in names]
                    + [str(e.result), status_html("example", SHOWN)])
    examples = gr.Examples(rows, inputs=[*(form[n] for n in names), view["video"], view["status"]],
                           label="Examples (results made ahead)", example_labels=[e.label for e in shown],
                           run_on_click=False, cache_examples=False, elem_id=f"genl-examples-{tab}")
    if files:
        def uploads(sample):
            values = shown[sample[0] if isinstance(sample, (list, tuple)) else int(sample)].form_values()
            out = [values.get(n) or None for n in files]
            return out if len(out) > 1 else out[0]

        examples.load_input_event.then(uploads, [examples.dataset], [form[n] for n in files],
                                       show_progress="hidden", queue=False)
