"""Tab 5: the queue and history: status, thumbnail, position, progress, preview; cancel, move, share, delete,
re-run, and load a job's settings back into its tab (ui/job_values.py).

With auth on, every handler passes the logged-in user to the Studio, which shows each user only their own
jobs and the ones shared with everyone, and lets only the owner change a job.
"""
from __future__ import annotations

import html
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import gradio as gr

from . import common
from .job_values import FILE_FIELDS, job_values
from .timeline_rows import summarize_prompt

# "result" (the thumbnail) comes after the first three, so API clients' row[0] (id) and row[2] (status) hold
HEADERS = ["id", "kind", "status", "result", "position", "progress", "created", "prompt", "message"]
EMPTY_ROW = ["", "", "", "", "", "", "", "No jobs yet.", ""]
# At phone width app.py's JOBS_PHONE_CSS hides id, kind, position, progress and message (by position here).
FILE_WORDS = {"video": "uploaded video", "control_video": "reference video", "mask_video": "mask video"}


def thumbnail_html(studio, job) -> str:
    """A finished job's first-frame thumbnail as an <img> served from the results folder (never private/)."""
    path = job.outputs.get("thumbnail") if job.status == "done" else None
    if not path or not Path(path).is_file():
        return ""
    path = Path(path).resolve()
    if studio.results.resolve() not in path.parents:
        return ""
    return (f'<img class="genl-thumb" src="gradio_api/file={quote(str(path))}" alt="{html.escape(job.kind)} result" '
            'style="width:48px;height:48px;object-fit:cover;image-rendering:pixelated;border-radius:4px">')


def user_of(request) -> str | None:
    """The logged-in user's name, or None when the app runs without auth (everyone sees everything)."""
    return getattr(request, "username", None) or None


def job_rows(studio, limit: int = 200, user: str | None = None) -> list[list]:
    rows = []
    for job in studio.list(limit, user=user):
        pos = studio.position(job.id) if job.status == "queued" else ""
        rows.append([job.id, job.kind, job.status + (" (shared)" if job.shared else ""), thumbnail_html(studio, job),
                     pos, f"{job.progress:.0%}", time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created)),
                     summarize_prompt(job.prompt), job.message])
    return rows or [EMPTY_ROW]


def served_upload(studio, path) -> str | None:
    """A job's uploaded file as the tab can show it again: kept uploads live in the private folder, which is
    never served, so they are copied into Gradio's own upload folder. None when the file is gone or is not
    one the studio kept (a job never reveals other server files)."""
    from gradio.utils import get_upload_folder

    if not path or not Path(path).is_file():
        return None
    src, gradio_uploads = Path(path).resolve(), Path(get_upload_folder()).resolve()
    if gradio_uploads in src.parents:
        return str(src)
    if not any(base.resolve() in src.parents for base in (studio.uploads, studio.results, common.EXAMPLES_DIR)):
        return None
    dest = gradio_uploads / "genl-loaded" / src.name  # kept uploads are named by their content
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return str(dest)


def load_values(studio, job_id: str, user: str | None = None) -> tuple[str, dict, list[str]]:
    """(tab id, {input name: value}, notes) to load a job's settings into its tab; uploads that are gone
    become empty fields and a note."""
    if not job_id:
        raise ValueError("Select a job first (click its row).")
    job = studio.get(job_id, user=user)
    if job is None:
        raise ValueError(f"There is no job '{job_id}'.")
    tab, values, notes = job_values(job.spec.settings)
    for name in FILE_FIELDS:
        if values.get(name):
            shown = served_upload(studio, values[name])
            if shown is None:
                notes.append(f"The {FILE_WORDS.get(name, 'file')} this job used is no longer kept on the server: "
                             "upload it again before running.")
            values[name] = shown
    return tab, values, notes


def job_details(studio, job_id: str, user: str | None = None):
    """(status, preview, video, files, settings JSON) of one job, for the selected-job panel."""
    if not job_id:
        return common.status_html("", "Select a job in the table."), None, None, None, None
    job = studio.get(job_id, user=user)
    if job is None:
        return common.status_html("", f"There is no job '{job_id}'."), None, None, None, None
    pos = studio.position(job_id)
    text = job.message or job.status
    if job.status == "queued" and pos:
        text = f"Queued: position {pos} in the queue."
    if job.status == "interrupted":
        text += " Press 'Re-run with the same settings' to run it again."
    fraction = job.progress if job.status in ("running", "done") else None
    out = job.outputs
    video = out.get("video") if job.status == "done" else None
    files = common.result_files(out) if job.status == "done" else None
    return (common.status_html(job.status, text, fraction), out.get("preview"), video, files,
            job.spec.settings)


def create_demo(studio, tabs=None, targets=None) -> gr.Blocks:
    """targets: {tab id: (title, Form of its loadable inputs)} for 'Load these settings into the tab', which
    switches `tabs` (the app's gr.Tabs) to the job's tab."""
    targets = targets or {}
    with gr.Blocks() as demo:
        with gr.Row():
            refresh = gr.Button("Refresh", size="sm")
            auto = gr.Checkbox(True, label="Refresh every 2 s")
        table = gr.Dataframe(value=[EMPTY_ROW[:7] + ["Loading…", ""]], headers=HEADERS, type="array",
                             datatype=["str", "str", "str", "html", "str", "str", "str", "str", "str"],
                             interactive=False, wrap=True,
                             label="Jobs (newest first); click a row to select it", elem_classes=["genl-jobs"],
                             column_widths=["190px", "80px", "90px", "72px", "80px", "80px", "130px", "30%", "20%"])
        with gr.Row():
            job_id = gr.Textbox(label="Selected job id", scale=3)
            cancel = gr.Button("Cancel", variant="secondary", scale=1)
            rerun = gr.Button("Re-run with the same settings", scale=1)
            delete = gr.Button("Delete", scale=1)
            load = gr.Button("Load these settings into the tab", scale=1, elem_classes=["genl-load"],
                             visible=bool(targets))
        with gr.Row():
            up = gr.Button("Move up in the queue", size="sm")
            down = gr.Button("Move down in the queue", size="sm")
            share = gr.Button("Share with other users", size="sm")
            unshare = gr.Button("Make private", size="sm")
        status = gr.HTML(elem_classes=["genl-job-status"])
        with gr.Row():
            preview = gr.Image(label="Preview", type="filepath", interactive=False)
            video = gr.Video(label="Result", interactive=False, elem_classes=["genl-job-video"])
        with gr.Row():
            files = gr.File(label="Download (video and settings JSON)", file_count="multiple", interactive=False)
            settings = gr.JSON(label="Settings JSON (exactly what ran)")
        timer = gr.Timer(2.0)

        details = [status, preview, video, files, settings]
        ui = dict(concurrency_limit=None, show_progress="hidden")

        def select(rows, evt: gr.SelectData, request: gr.Request):
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            picked = rows[row][HEADERS.index("id")] if rows and 0 <= row < len(rows) else ""
            return (picked, *job_details(studio, picked, user_of(request)))

        def refresh_all(selected, request: gr.Request):
            user = user_of(request)
            return (job_rows(studio, user=user), *job_details(studio, selected, user))

        def show(selected, request: gr.Request):
            return job_details(studio, selected, user_of(request))

        def act(fn):
            """A button on the selected job: fn(job_id, user) -> the job id to show next."""
            def run(selected, request: gr.Request):
                user = user_of(request)
                if not selected:
                    raise common.user_error(ValueError("Select a job first (click its row)."))
                try:
                    new_id = fn(selected, user)
                except ValueError as err:
                    raise common.user_error(err)
                return (new_id, job_rows(studio, user=user), *job_details(studio, new_id, user))
            return run

        hidden = dict(ui, api_visibility="undocumented")
        outputs = [job_id, table, *details]
        table.select(select, [table], [job_id, *details], **hidden)
        refresh.click(refresh_all, [job_id], [table, *details], api_name="jobs", **ui)
        timer.tick(refresh_all, [job_id], [table, *details], **hidden)
        demo.load(refresh_all, [job_id], [table, *details], **hidden)  # per user, so not a value= callable
        auto.change(lambda on: gr.Timer(active=on), auto, timer, **hidden)
        job_id.submit(show, [job_id], details, api_name="job", **ui)
        cancel.click(act(lambda j, u: (studio.cancel(j, user=u), j)[1]), [job_id], outputs, api_name="cancel", **ui)
        rerun.click(act(lambda j, u: studio.rerun(j, user=u).id), [job_id], outputs, api_name="rerun", **ui)
        delete.click(act(lambda j, u: (studio.delete(j, user=u), "")[1]), [job_id], outputs, api_name="delete",
                     **ui)
        up.click(act(lambda j, u: (studio.move(j, "up", user=u), j)[1]), [job_id], outputs, api_name="move_up",
                 **ui)
        down.click(act(lambda j, u: (studio.move(j, "down", user=u), j)[1]), [job_id], outputs,
                   api_name="move_down", **ui)
        share.click(act(lambda j, u: (studio.share(j, True, user=u), j)[1]), [job_id], outputs, api_name="share",
                    **ui)
        unshare.click(act(lambda j, u: (studio.share(j, False, user=u), j)[1]), [job_id], outputs,
                      api_name="unshare", **ui)

        def load_into_tab(selected, request: gr.Request):
            """Switch to the job's tab and fill its fields from the job's settings, all but the uploads."""
            try:
                tab, values, notes = load_values(studio, selected, user_of(request))
                if tab not in targets:
                    raise ValueError("This server shows no tab for this kind of job.")
            except ValueError as err:
                raise common.user_error(err)
            title, form = targets[tab]
            if "prev_unit" in form.components:  # the unit switch must not convert the loaded rows again
                values["prev_unit"] = values.get("unit")
            out = {form[name]: value for name, value in values.items()
                   if name in form.components and name not in FILE_FIELDS}
            text = f"Loaded the settings of job {selected} into the '{title}' tab."
            if notes:
                gr.Warning(common.safe(" ".join([text, *notes])))
            else:
                gr.Info(common.safe(text))
            return {**out, tabs: gr.Tabs(selected=tab)} if tabs is not None else out

        def load_uploads(selected, request: gr.Request):
            """Then the uploads: the tab inspects a new upload against the rows, which are in place by now
            (and, fitting the video, stay)."""
            tab, values, _ = load_values(studio, selected, user_of(request))
            form = targets[tab][1]
            return {form[name]: values.get(name) for name in FILE_FIELDS if name in form.components}

        if targets:
            fields = [c for _, form in targets.values() for name, c in form.components.items()
                      if name not in FILE_FIELDS]
            uploads = [form[name] for _, form in targets.values() for name in FILE_FIELDS if name in form.components]
            load.click(load_into_tab, [job_id], fields + ([tabs] if tabs is not None else []), **hidden).success(
                load_uploads, [job_id], uploads, **hidden)
    return demo
