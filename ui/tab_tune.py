"""Tab: tune an image model on one long video (one-shot tuning with clip identifiers, paper Sec. 4), watch
its loss, then edit with the tuned model. Gradio only: the studio runs the "tune" and "edit" job kinds."""
from __future__ import annotations

import gradio as gr

from genl.jobs import events
from genl.settings import CoDenoiseSettings, EditSettings
from genl.tuning.settings import TuneSettings

from . import common

T = TuneSettings()
INTRO = ("Teach the model one video, so edits keep its look and motion closely. Upload the video, say what it "
         "shows, and start. Tuning takes a while (minutes on a GPU); you can stop it at any time and the last "
         "saved state stays usable. Starting again with the same settings continues where it stopped.")
COLUMNS = ["Name", "Video shows", "Method", "Steps", "Finished", "Last loss"]


def tuning_label(t: dict) -> str:
    state = "finished" if t["finished"] else f"stopped at step {t['step']}"
    return f"{t['prompt'][:40]} ({t['method']}, {state}) [{t['key'][:8]}]"


def tuning_choices(studio) -> list:
    return [(tuning_label(t), t["key"]) for t in studio.tunings()]


def tuning_rows(studio) -> list:
    return [[t["key"], t["prompt"], t["method"], t["step"], "yes" if t["finished"] else "no",
             None if t["loss"] is None else round(t["loss"], 4)] for t in studio.tunings()]


def stream_tune(studio, job_id: str):
    """Yield (job id, status, loss plot rows, speed text) while the tuning job runs."""
    import pandas as pd

    points = []
    for batch in studio.watch(job_id):
        for ev in batch or []:
            text = events.describe(ev)
            if ev["type"] == "progress" and ev.get("loss") is not None:
                points.append((ev["step"], ev["loss"]))
                speed = (f"{ev.get('rate') or 0:.2f} steps per second, about "
                         f"{events.format_seconds(ev.get('eta'))} left")
                yield job_id, common.status_html("running", text, ev["fraction"]), \
                    pd.DataFrame(points, columns=["step", "loss"]), speed
            elif ev["type"] in events.FINAL_TYPES:
                yield job_id, common.status_html(ev["type"], text, None), \
                    pd.DataFrame(points, columns=["step", "loss"]), ""
                if ev["type"] == "failed":
                    raise gr.Error(common.safe(text), print_exception=False)
                return


def create_demo(studio) -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                upload, start, end, fps, info = common.trimmed_video_input("Video to learn (mp4, webm, mov, mkv, avi, gif)")
            with gr.Column():
                prompt = gr.Textbox(label="What the video shows", lines=2,
                                    placeholder="a jeep driving in the desert   (or scenes: '0-47: ... | 48-95: ...')")
                method = gr.Radio([("Light (LoRA, small files)", "lora"), ("Full (Tune-A-Video layers)", "full")],
                                  value=T.method, label="How much of the model to change")
                epochs = gr.Slider(1, 500, value=T.epochs, step=1, label="Passes over the video (epochs)")
                batch = gr.Slider(1, 16, value=T.batch_size, step=1, label="Clips per step (more needs more memory)")
        with gr.Accordion("Advanced", open=False):
            with gr.Row():
                model = gr.Textbox(value=common.pick_default_model(studio), label="Model")
                lr = gr.Number(value=T.learning_rate, label="Learning rate (per clip)")
                dropout = gr.Slider(0.0, 0.9, value=T.identifier_dropout, step=0.05,
                                    label="Identifier dropout (how often a clip learns without its tag)")
            with gr.Row():
                clip_length = gr.Number(value=T.clip_length, precision=0, label="Clip length M")
                stride = gr.Number(value=T.stride, precision=0, label="Stride S")
                width = gr.Number(value=T.width, precision=0, label="Width")
                height = gr.Number(value=T.height, precision=0, label="Height")
        with gr.Row():
            run = gr.Button("Start tuning", variant="primary")
            cancel = gr.Button("Stop (keeps what it learned)", variant="stop")
        job_id = gr.Textbox(label="Job id", interactive=False)
        status = gr.HTML(common.status_html("", "No tuning yet."))
        plot = gr.LinePlot(x="step", y="loss", label="Loss while tuning (lower is better; it flattens when done)")
        speed = gr.Markdown()

        gr.Markdown("### Saved tunings")
        table = gr.Dataframe(headers=COLUMNS, value=lambda: tuning_rows(studio), interactive=False)
        refresh = gr.Button("Refresh the list")
        gr.Markdown("### Use a tuning for an edit")
        with gr.Row():
            pick = gr.Dropdown(choices=tuning_choices(studio), label="Tuning")
            start_from = gr.Radio([("The uploaded video", "video"), ("Random noise (new take)", "noise")],
                                  value="video", label="Start from")
            identifiers = gr.Checkbox(value=True, label="Use clip tags (identifiers)")
        target = gr.Textbox(label="New timeline: what the video should become",
                            placeholder="a blue jeep driving in the snow   (or '0-47: ... | 48-95: ...')")
        steps = gr.Slider(1, 100, value=EditSettings.steps, step=1, label="Steps")
        run_edit = gr.Button("Edit with the tuning", variant="primary")
        view = common.job_view()

        def submit_tune(request: gr.Request, video, a, b, f, text, how, ep, bs, mdl, rate, drop, m, s, w, h):
            try:
                settings = TuneSettings(video=video or "", start=float(a or 0), end=float(b) if b else None,
                                        fps=float(f or T.fps), prompt=text or "", method=how, epochs=int(ep),
                                        batch_size=int(bs), model=mdl, learning_rate=float(rate),
                                        identifier_dropout=float(drop), clip_length=int(m), stride=int(s),
                                        width=int(w), height=int(h))
                job = studio.submit(settings, owner=getattr(request, "username", None))
            except (TypeError, ValueError) as err:
                raise common.user_error(ValueError(str(err)))
            yield from stream_tune(studio, job.id)

        run.click(submit_tune, [upload, start, end, fps, prompt, method, epochs, batch, model, lr, dropout,
                                clip_length, stride, width, height], [job_id, status, plot, speed],
                  api_name="tune", **common.gpu_event(studio))
        cancel.click(lambda j: common.cancel(studio, j), job_id, status, api_name="cancel_tune",
                     concurrency_limit=None)

        def refresh_all():
            return tuning_rows(studio), gr.update(choices=tuning_choices(studio))

        refresh.click(refresh_all, None, [table, pick], api_visibility="undocumented")
        status.change(refresh_all, None, [table, pick], api_visibility="undocumented")

        def submit_edit(request: gr.Request, key, origin, use_ids, text, n, video, a, b):
            try:
                if not key:
                    raise ValueError("Pick a saved tuning first (or tune on a video above).")
                settings = EditSettings(tuned=key, video=video or "", start=float(a or 0),
                                        end=float(b) if b else None, from_noise=origin == "noise",
                                        use_identifiers=bool(use_ids), prompt=text or "", steps=int(n),
                                        codenoise=CoDenoiseSettings())
                job = studio.submit(settings, owner=getattr(request, "username", None))
            except ValueError as err:
                raise common.user_error(err)
            yield from common.stream_job(studio, job.id)

        run_edit.click(submit_edit, [pick, start_from, identifiers, target, steps, upload, start, end], view.inputs,
                       api_name="tuned_edit", **common.gpu_event(studio))
    # what the Jobs tab fills from a tune or tuned-edit job (names as ui/job_values.py gives them)
    demo.loadable = common.Form(video=upload, start=start, end=end, fps=fps, prompt=prompt, method=method,
                                epochs=epochs, batch_size=batch, model=model, learning_rate=lr,
                                identifier_dropout=dropout, clip_length=clip_length, stride=stride, width=width,
                                height=height, tuned=pick, from_noise=start_from, use_identifiers=identifiers,
                                target=target, steps=steps)
    return demo
