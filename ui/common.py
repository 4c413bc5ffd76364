"""Widgets the tabs share: the timeline editor, the Advanced accordion, the job view and its stream."""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from genl.jobs import events
from genl.settings import SCHEDULERS, CoDenoiseSettings, GenerateSettings
from genl.codenoise import WEIGHT_SCHEMES

from genl.validation import check_form
from . import timeline_rows
from .strip import render_strip

VIDEO_TYPES = [".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif", ".m4v"]  # what genl/video_io.py reads
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"

DEFAULTS = GenerateSettings()
DEMO, DEMO_SIZE = "demo", 128  # the bundled demo model (assets/demo-model) is trained at 128x128
DEMO_PROMPTS = ["a red circle moving right over grass", "a blue square bouncing over sand"]
# UI-only events: outside the queue, no spinner, callable but not listed in the API page.
HIDDEN = dict(queue=False, show_progress="hidden", api_visibility="undocumented")
CN = CoDenoiseSettings()


def safe(text) -> str:
    """User text (prompts, file and model names echoed in messages) as inert text in toasts, notes and
    Markdown: Gradio renders those as HTML. Quotes stay, so API clients read the sentence unchanged."""
    return html.escape(str(text), quote=False)


# Engine messages written for the command line, said as advice the web page can follow.
WEB_WORDS = {"Make the video shorter or raise --max-frames.":
             "Make the video shorter (Advanced → Length, or trim the upload); the server's admin sets the limit."}


def web_words(text) -> str:
    text = str(text)
    for cli, web in WEB_WORDS.items():
        text = text.replace(cli, web)
    return text


def user_error(err: Exception) -> gr.Error:
    """A ValueError's message shown as it is (STYLE 12), escaped, without a traceback in the log."""
    return gr.Error(safe(web_words(err)), print_exception=False)


class Form:
    """Named components; events pass them as keyword arguments (`inputs_kwargs=form.components`), which also
    names the parameters of the HTTP API."""

    def __init__(self, **components):
        self.components = dict(components)

    def add(self, **components):
        self.components.update(components)
        return self

    def __getitem__(self, name):
        return self.components[name]

    @property
    def inputs(self):
        return list(self.components.values())


# ---- timeline editor -------------------------------------------------------------------------------
def timeline_editor(prompts, num_frames: int, fps: float, unit: str = timeline_rows.SECONDS, label="Prompt timeline"):
    """Rows (from, to, prompt, negative) + unit switch + add/remove/split + the windows strip."""
    with gr.Group():
        unit_radio = gr.Radio([timeline_rows.SECONDS, timeline_rows.FRAMES], value=unit, label="Times in",
                              info="Seconds: a row covers [from, to). Frames: both ends included.")
        table = gr.Dataframe(value=timeline_rows.default_rows(unit, fps, num_frames, prompts), headers=timeline_rows.COLUMNS,
                             datatype=["number", "number", "str", "str"], type="array", interactive=True,
                             column_count=4, label=label, elem_id=None, wrap=True,
                             elem_classes=["genl-timeline"])
        with gr.Row():
            add = gr.Button("Add row", size="sm")
            remove = gr.Button("Remove row", size="sm")
            split = gr.Button("Split row", size="sm")
        strip = gr.HTML(label="Segments and co-denoising windows")
    return Form(unit=unit_radio, rows=table, add=add, remove=remove, split=split, strip=strip,
                selected=gr.State(None), prev_unit=gr.State(unit))


def wire_timeline(tl: Form, fps, num_frames) -> None:
    """Row buttons and the unit switch; they need the length and fps from the Advanced accordion."""

    def on_select(evt: gr.SelectData):
        return evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index

    def guarded(fn):
        def run(*args):
            try:
                return fn(*args)
            except ValueError as err:
                raise user_error(err)
        return run

    ui = HIDDEN
    tl["rows"].select(on_select, None, tl["selected"], **ui)
    tl["add"].click(guarded(lambda rows, unit, f, n: timeline_rows.add_row(rows, unit, float(f), int(n))),
                    [tl["rows"], tl["unit"], fps, num_frames], tl["rows"], **ui)
    tl["remove"].click(lambda rows, sel: (timeline_rows.remove_row(rows, sel), None),
                       [tl["rows"], tl["selected"]], [tl["rows"], tl["selected"]], **ui)
    tl["split"].click(guarded(lambda rows, sel, unit: (timeline_rows.split_row(rows, sel, unit), None)),
                      [tl["rows"], tl["selected"], tl["unit"]], [tl["rows"], tl["selected"]], **ui)
    tl["unit"].change(lambda rows, old, new, f: (timeline_rows.convert_rows(rows, old, new, float(f or 8)), new),
                      [tl["rows"], tl["prev_unit"], tl["unit"], fps], [tl["rows"], tl["prev_unit"]], **ui)


# ---- advanced settings -----------------------------------------------------------------------------
def advanced(studio, *, pipeline: bool = True, with_fps: bool = True, max_frames: int = 1024,
             length_info: str = "", quick_demo: bool = False) -> Form:
    """quick_demo (the text tab): fast sampling settings from the start, the demo model's (DEMO_QUICK) or a
    video model's (VIDEO_FAST), following the Model choice; other tabs keep the standard ones. pipeline: the
    tab picks the generator, and gets the fusion choice, which only video models can use."""
    choices = [m["name"] for m in studio.models()]
    default_model = pick_default_model(studio)
    size = DEMO_SIZE if default_model == DEMO else DEFAULTS.width
    start = (DEMO_QUICK if default_model == DEMO else VIDEO_FAST) if quick_demo else STANDARD_SAMPLING
    # Whole-number fields keep precision=None: Gradio's int() of NaN/inf would fail before any handler, with
    # its own internal text; genl.validation.check_form says it in a sentence instead.
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            num_frames = gr.Number(DEFAULTS.num_frames, label="Length (frames)", step=1,
                                   info=length_info or f"At most {max_frames} frames on this server.")
            fps = gr.Number(DEFAULTS.fps, label="Frames per second", minimum=1, maximum=60) if with_fps else None
            width = gr.Number(size, label="Width", step=8)
            height = gr.Number(size, label="Height", step=8)
        with gr.Row():
            model = gr.Dropdown(choices, value=default_model, label="Model", allow_custom_value=True,
                                info="A configured model, a hub id or a local folder. 'demo' is the bundled "
                                     "demo model: synthetic shapes world (works offline; not Stable Diffusion).")
            if pipeline:
                pipe = gr.Radio(["animatediff", "tuning_free"], value="animatediff", label="Generator",
                                info="animatediff: a text-to-video model. tuning_free: an image model with "
                                     "cross-frame attention.")
            seed = gr.Number(DEFAULTS.seed, label="Seed", step=1, elem_classes=["genl-seed"],
                             info="The same seed and settings give the same video.")
            dice = gr.Button("🎲", size="sm", scale=0, min_width=48, elem_classes=["genl-dice"])
            randomize = gr.Checkbox(False, label="New random seed for every run")
        with gr.Row():
            steps = gr.Slider(1, 150, value=start["steps"], step=1, label="Steps")
            guidance = gr.Slider(0, 20, value=DEFAULTS.guidance, step=0.5, label="Guidance")
            scheduler = gr.Dropdown(list(SCHEDULERS), value=start["scheduler"], label="Scheduler")
        with gr.Row():
            clip_length = gr.Number(CN.clip_length, label="Frames per clip", step=1,
                                    info="Frames the model draws at once (the paper's clip length M).")
            stride = gr.Number(start["stride"], label="Clip spacing (frames)", step=1,
                               info="How far each clip starts after the previous one (the paper's stride S); "
                                    "less than the clip length makes clips overlap, a quarter of it is the paper's.")
            weights = gr.Dropdown(list(WEIGHT_SCHEMES), value=CN.weights, label="Fusion weights")
            schedule = gr.Dropdown(SCHEDULE_CHOICES, value=start["schedule"], label="Clip schedule",
                                   info="Moving clips shift every step, so no seam stays in one place; with "
                                        "spacing = clip length they cost what separate clips cost (about 3x "
                                        "faster than the paper's quarter spacing). Settled clips overlap for "
                                        "the first tenth of the steps, where the layout is decided, then move. "
                                        "Disjoint clips (image models only) denoise each frame once per step.")
            fusion = gr.Dropdown(FUSION_CHOICES, value=start["fusion"], label="Where clips are fused",
                                 info="Inside the motion modules (text-to-video models only): the spatial layers "
                                      "run once per frame and only the motion modules see clips, as FreeNoise "
                                      "does.") if pipeline else None
            share = gr.Slider(0, 1, value=start.get("noise_share", 0.0), step=0.05, label="Shared noise",
                              info="Text-to-video models: how much of the starting noise all frames share. More "
                                   "keeps objects steady and in place, less lets them move; 0 is how the models "
                                   "were trained.") if pipeline else None
            negative = gr.Textbox("", label="Negative prompt for every row", placeholder="blurry, low quality")
    model.change(fit_size_to_model, [model, width, height], [width, height], **HIDDEN)
    if quick_demo:
        sampling = [steps, scheduler, stride, schedule] + ([fusion] if fusion is not None else [])
        model.change(fit_sampling_to_model, [model, *sampling], sampling, **HIDDEN)
    if fusion is not None:
        pipe.change(fit_fusion_to_generator, [pipe, stride, schedule, fusion], fusion, **HIDDEN)
    dice.click(random_seed, None, seed, **HIDDEN)
    form = Form(num_frames=num_frames, fps=fps, width=width, height=height, model=model, seed=seed,
                randomize=randomize, steps=steps, guidance=guidance, scheduler=scheduler,
                clip_length=clip_length, stride=stride, weights=weights, schedule=schedule,
                negative_prompt=negative)
    if pipeline:
        form.add(pipeline=pipe, fusion=fusion, noise_share=share)
    if not with_fps:
        form.components.pop("fps")
    return form


FUSION_CHOICES = [("Model outputs (the paper's)", "output"),
                  ("Inside the motion modules (video models; fastest)", "motion")]
SCHEDULE_CHOICES = [("Fixed clips (the paper's)", "fixed"), ("Moving clips (faster)", "shifted"),
                    ("Settled, then moving clips (fast)", "settled"),
                    ("Disjoint moving clips (fastest; image models, spacing = clip length)", "partitioned")]


def random_seed() -> int:
    """The 🎲 button: a fresh seed in the box, so the run that follows can be repeated."""
    import secrets

    return secrets.randbelow(2 ** 31)


def pick_default_model(studio) -> str:
    """The first configured model that can load, else the bundled demo model."""
    models = studio.models()
    usable = [m["name"] for m in models if m["available"]]
    return next((n for n in usable if n != DEMO), usable[0] if usable else DEMO)


def default_prompts(studio, real: list[str]) -> list[str]:
    """Example rows the chosen model can draw: the demo model only knows its shapes world."""
    return DEMO_PROMPTS if pick_default_model(studio) == DEMO else real


def fit_size_to_model(model, width, height):
    """The demo model draws 128x128; other models start at 512 unless the user already chose a size."""
    if model == DEMO:
        return DEMO_SIZE, DEMO_SIZE
    if (width, height) == (DEMO_SIZE, DEMO_SIZE):
        return DEFAULTS.width, DEFAULTS.height
    return gr.update(), gr.update()


# The demo model's text->video defaults: 10 DPM++ steps over settled clips at spacing = clip length finish a
# 64-frame video in under a minute on 2 CPU cores and score better on the quality benchmark than 50 DDIM steps
# at S=4 did on the previous demo model (assets/demo-model/README.md has both measurements).
# Fused inside the motion modules the demo's clips also change identity less (7.9 % of ordinary frames against
# 12.4 %), stay on prompt more (0.865 against 0.771 all aligned) and take 41 s rather than 46
# (bench/results/quality_motion_cpu_motion_fusion.md).
DEMO_QUICK = {"steps": 10, "scheduler": "dpm++", "stride": CN.clip_length, "schedule": "settled", "fusion": "motion"}
# A real text-to-video model's default in the text tab: settled clips at spacing M fused inside the motion
# modules: the canonical 128-frame job in 57.5 s on an H100 and 54.8 s on an H200 (1.99x FreeNoise in the
# same process), and on the demo world better identity at the seams than the paper's S=M/4 with the seam
# jump within the seeds' spread (README, "Speed"). Image-model tabs keep the paper's schedule (STANDARD_SAMPLING).
VIDEO_FAST = {"steps": DEFAULTS.steps, "scheduler": DEFAULTS.scheduler, "stride": CN.clip_length,
              "schedule": "settled", "fusion": "motion"}
STANDARD_SAMPLING = {"steps": DEFAULTS.steps, "scheduler": DEFAULTS.scheduler, "stride": CN.stride,
                     "schedule": CN.schedule, "fusion": CN.fusion}
SAMPLING_KEYS = ("steps", "scheduler", "stride", "schedule", "fusion")


def fit_sampling_to_model(model, steps, scheduler, stride, schedule, fusion=None):
    """In the text tab, picking the demo model switches untouched video-model settings (VIDEO_FAST) to its
    fast ones, and back for other models; settings the user changed stay as they are. Without `fusion` (a tab
    without that field) it compares and returns the other four."""
    keys = SAMPLING_KEYS if fusion is not None else SAMPLING_KEYS[:4]
    current = dict(zip(keys, (steps, scheduler, stride, schedule, fusion)))
    source, target = (VIDEO_FAST, DEMO_QUICK) if model == DEMO else (DEMO_QUICK, VIDEO_FAST)
    if all(_same(current[k], source[k]) for k in keys):
        return tuple(target[k] for k in keys)
    return (gr.update(),) * len(keys)


def fit_fusion_to_generator(generator, stride, schedule, fusion):
    """Fusion inside motion modules needs a text-to-video model: the image-model generator switches it to the
    model outputs, and the video generator back when its clips are the fast defaults' (settled at spacing M)."""
    if generator != "animatediff":
        return "output" if fusion == "motion" else gr.update()
    fast = _same(stride, VIDEO_FAST["stride"]) and schedule == VIDEO_FAST["schedule"]
    return VIDEO_FAST["fusion"] if fast and fusion == "output" else gr.update()


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def plan_text(studio, make_settings, values: dict) -> tuple[str, str]:
    """(strip HTML, estimate Markdown) for the current form; problems show in both, never raise."""
    try:
        data = timeline_rows.strip_data(values["rows"], values["unit"], float(values["fps"] or 8),
                                int(values["num_frames"] or 1), int(values["clip_length"] or 1),
                                int(values["stride"] or 1))
    except (TypeError, ValueError) as err:
        return f'<p class="genl-error" style="color:#c0392b">⚠ {html.escape(str(err))}</p>', ""
    strip = render_strip(data, float(values["fps"] or 8))
    try:
        est = studio.estimate(make_settings(values))
    except (TypeError, ValueError) as err:
        return strip, f"**Cannot run yet:** {safe(web_words(err))}"
    if not est:
        return strip, ""
    return strip, estimate_text(est)


def estimate_text(est: dict) -> str:
    """The estimate in minutes, saying where its rates come from; GPU memory only on a GPU server."""
    device = est.get("device", "?")
    source = ("measured on this server" if est.get("calibrated")
              else "a first guess: it gets better after the first job of this kind on this server")
    text = f"**Estimate:** {events.format_minutes(est['seconds'])} on {'the CPU' if device == 'cpu' else device} ({source})"
    if est.get("inversion_cached"):
        text += "; this video's inversion is already cached, so that step is skipped"
    if device != "cpu" and est.get("memory_gb") is not None:
        text += f"; needs about {est['memory_gb']} GB of GPU memory"
    return text + f". The video is made in {est.get('windows', '?')} overlapping clips."


# ---- a job's live view -----------------------------------------------------------------------------
def job_view() -> Form:
    with gr.Row():
        job_id = gr.Textbox(label="Job id", interactive=False, scale=1)
        status = gr.HTML(label="Status", value=status_html("", "No job yet."))
    with gr.Row():
        preview = gr.Image(label="Live preview: what a few frames look like so far", type="filepath",
                           interactive=False, elem_classes=["genl-preview"])
        video = gr.Video(label="Result", interactive=False, elem_classes=["genl-result"], loop=True, autoplay=True)
    files = gr.File(label="Download (video and settings JSON)", file_count="multiple", interactive=False,
                    elem_classes=["genl-files"])
    return Form(job_id=job_id, status=status, preview=preview, video=video, files=files)


def status_html(status: str, text: str, fraction: float | None = None) -> str:
    bar = "" if fraction is None else f'<progress value="{fraction:.3f}" max="1" style="width:100%"></progress>'
    badge = f"<b>{html.escape(status)}</b> — " if status else ""
    return f'<div class="genl-status" data-status="{html.escape(status)}">{badge}{html.escape(text)}{bar}</div>'


def result_files(outputs: dict) -> list[str]:
    return [outputs[k] for k in ("video", "mask_video", "settings") if outputs.get(k)]


def used_seed(studio, job_id: str):
    """The seed a job ran with (a randomised one is drawn at submit and stored in its settings)."""
    job = studio.get(job_id)
    return None if job is None else job.spec.settings.get("seed")


def queued_text(job_id: str, position: int) -> str:
    """What the tab says the moment a job is submitted: its place in the queue and its id."""
    where = "next to run" if position <= 1 else f"position {position}"
    return f"Queued, {where} — job {job_id}."


def stream_job(studio, job_id: str):
    """Yield (job id, status, preview, video, files) as the job's events arrive, until it ends."""
    preview, fraction, status = None, 0.0, "queued"
    text = queued_text(job_id, studio.position(job_id))
    yield job_id, status_html(status, text, 0.0), None, None, None
    for batch in studio.watch(job_id):
        if not batch:
            continue
        for ev in batch:
            kind = ev["type"]
            if kind == "preview":
                preview = ev["path"]
                continue
            text = events.describe(ev)
            if kind == "progress":
                status, fraction = "running", ev["fraction"]
            elif kind == "started":
                status = "running"
            elif kind == "finished":
                out = ev["outputs"]
                seed = used_seed(studio, job_id)
                if seed is not None:
                    text += f" Seed used: {seed}."
                video = out["video"]  # a plain path: API clients get the file (the seed is in the status)
                yield (job_id, status_html("done", text, 1.0), out.get("preview", preview), video,
                       result_files(out))
                return
            elif kind == "cancelled":
                yield job_id, status_html("cancelled", text, None), preview, None, None
                return
            elif kind == "failed":
                yield job_id, status_html("failed", text, None), preview, None, None
                raise gr.Error(safe(text), print_exception=False)
        yield job_id, status_html(status, text, fraction), preview, None, None


def gpu_event(studio) -> dict:
    """Event options for job buttons. The studio's own durable queue orders the work, so Gradio's queue must
    never hold a submit back: a submit returns its job id and queue position at once, then only watches."""
    return dict(concurrency_limit=None)


def cancel(studio, job_id: str) -> str:
    """Cancel button: the running job stops within a step; the stream then shows 'cancelled'."""
    if not job_id:
        return status_html("", "No job to cancel.")
    try:
        asked = studio.cancel(job_id)
    except ValueError as err:
        raise user_error(err)
    return status_html("cancelling" if asked else "", "Cancelling…" if asked else "This job has already ended.")


# ---- uploads ---------------------------------------------------------------------------------------
def example_videos() -> list[str]:
    """The bundled example videos (assets/examples, made by its make_examples.py)."""
    return [str(p) for p in sorted(EXAMPLES_DIR.glob("*")) if p.suffix.lower() in (".mp4", ".webm", ".gif")]


def video_upload(label: str) -> gr.File:
    """A video upload box, with the bundled example videos to pick from when there are any."""
    upload = gr.File(label=label, file_count="single", elem_classes=["genl-upload"], file_types=VIDEO_TYPES)
    examples = example_videos()
    if examples:
        gr.Examples([[p] for p in examples], inputs=[upload], label="Examples")
    return upload


def trimmed_video_input(label: str):
    """Upload (with examples), trim start/end, fps and an info line: the source video of the edit tabs.
    Returns (upload, start, end, fps, info)."""
    upload = video_upload(label)
    with gr.Row():
        start = gr.Number(0, label="Trim start (s)", minimum=0)
        end = gr.Number(0, label="Trim end (s, 0 = to the end)", minimum=0)
        fps = gr.Number(DEFAULTS.fps, label="Frames per second", minimum=1, maximum=60)
    info = gr.Markdown("No video yet.", elem_classes=["genl-video-info"])
    return upload, start, end, fps, info


def inspect_upload(studio, path, start, end, fps, model, rows, unit, size=None):
    """On upload or trim: check the file, count frames, show samples, size the output, and spread the
    timeline rows over the new length. Returns (info, samples, num_frames, width, height, rows).
    size: the current (width, height), kept with rows that already fit."""
    from genl.video_io import fit_size

    keep = (gr.update(),) * 4
    if not path:
        return ("No video yet.", None, *keep)
    try:
        got = timeline_rows.inspect_video(path, fps=fps, start=start, end=end or None, max_frames=studio.max_frames)
    except ValueError as err:
        gr.Warning(safe(err))
        return (f"**Cannot use this file:** {safe(err)}", None, *keep)
    vi = got["info"]
    short = DEMO_SIZE if model == DEMO else 512
    w, h = fit_size(vi.width, vi.height, target_short_side=min(short, vi.width, vi.height), max_side=768)
    n = got["num_frames"]
    text = (f"{vi.width}×{vi.height}, {vi.fps:.2f} fps, {vi.duration:.2f} s in the file; the job uses "
            f"**{n} frames** at {got['fps']:g} fps, output {w}×{h}.")
    try:  # rows that already cover this length stay (a job's settings loaded with its video, say), and so
        timeline_rows.rows_to_timeline(rows, unit, got["fps"], n)  # does a chosen size of the video's shape
        if size and all(size) and abs(size[0] * h - size[1] * w) <= 8 * max(w, h):
            w, h = int(size[0]), int(size[1])
        return text, got["samples"], n, w, h, gr.update()
    except ValueError:
        pass
    prompts = ([r[2] for r in timeline_rows.convert_rows(rows, unit, unit, got["fps"])] or ["describe the video"])[:n]
    return text, got["samples"], n, w, h, timeline_rows.default_rows(unit, got["fps"], n, prompts)


def form_values(values: dict) -> dict:
    """A tab's values plus "prompt": its timeline table as the settings' timeline text."""
    fps = float(values.get("fps") or DEFAULTS.fps)
    return dict(values, prompt=timeline_rows.timeline_prompt(values["rows"], values.get("unit", timeline_rows.SECONDS), fps))


def wire_job(studio, demo, form, make, *, watch: list, strip, estimate, view, run, cancel_button, api_name: str):
    """The wiring every job tab shares: a live plan (windows strip + estimate) while the form changes, a run
    button that submits `make(values)` and streams the job, and a cancel button. One place, so every tab
    behaves the same."""

    def build(values):
        return make(form_values(values))

    def plan(**values):
        """Strip, estimate and the run button, re-checked on every change (examples included): the button
        is disabled while the note says the form cannot run."""
        try:
            check_form(values)
        except ValueError as err:
            return "", f"**Cannot run yet:** {safe(web_words(err))}", gr.update(interactive=False)
        strip_html, note = plan_text(studio, build, values)
        return strip_html, note, gr.update(interactive=not note.startswith("**Cannot run yet") and
                                           "genl-error" not in strip_html)

    for comp in watch:
        comp.change(plan, None, [strip, estimate, run], inputs_kwargs=form.components, **HIDDEN)
    demo.load(plan, None, [strip, estimate, run], inputs_kwargs=form.components, **HIDDEN)

    def submit(request: gr.Request, **values):
        try:
            check_form(values)  # NaN/inf/huge numbers get a sentence, not Python's conversion errors
            job = studio.submit(build(values), owner=getattr(request, "username", None))
        except ValueError as err:
            raise user_error(err)
        yield from stream_job(studio, job.id)

    run.click(submit, None, view.inputs, inputs_kwargs=form.components, api_name=api_name,
              show_progress="minimal", **gpu_event(studio))
    cancel_button.click(lambda job_id: cancel(studio, job_id), view["job_id"], view["status"],
                        api_name=f"cancel_{api_name}", concurrency_limit=None)
