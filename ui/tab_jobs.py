"""Tab 5: the queue and history: status, position, progress, preview; cancel, move, share, delete, re-run.

With auth on, every handler passes the logged-in user to the Studio, which shows each user only their own
jobs and the ones shared with everyone, and lets only the owner change a job.
"""
from __future__ import annotations

import time

import gradio as gr

from . import common
from .timeline_rows import summarize_prompt

HEADERS = ["id", "kind", "status", "position", "progress", "created", "prompt", "message"]


def user_of(request) -> str | None:
    """The logged-in user's name, or None when the app runs without auth (everyone sees everything)."""
    return getattr(request, "username", None) or None


def job_rows(studio, limit: int = 200, user: str | None = None) -> list[list]:
    rows = []
    for job in studio.list(limit, user=user):
        pos = studio.position(job.id) if job.status == "queued" else ""
        rows.append([job.id, job.kind, job.status + (" (shared)" if job.shared else ""), pos,
                     f"{job.progress:.0%}", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created)),
                     summarize_prompt(job.prompt), job.message])
    return rows or [["", "", "", "", "", "", "No jobs yet.", ""]]


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


def create_demo(studio) -> gr.Blocks:
    with gr.Blocks() as demo:
        with gr.Row():
            refresh = gr.Button("Refresh", size="sm")
            auto = gr.Checkbox(True, label="Refresh every 2 s")
        table = gr.Dataframe(value=[["", "", "", "", "", "", "Loading…", ""]], headers=HEADERS,
                             type="array", interactive=False, wrap=True,
                             label="Jobs (newest first); click a row to select it", elem_classes=["genl-jobs"],
                             column_widths=["190px", "80px", "90px", "80px", "80px", "170px", "35%", "20%"])
        with gr.Row():
            job_id = gr.Textbox(label="Selected job id", scale=3)
            cancel = gr.Button("Cancel", variant="secondary", scale=1)
            rerun = gr.Button("Re-run with the same settings", scale=1)
            delete = gr.Button("Delete", scale=1)
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
            picked = rows[row][0] if rows and 0 <= row < len(rows) else ""
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
    return demo
