"""Tab 6: settings and about: models and whether each can load, devices, workers, limits.

No server paths: a local model's folder shows as "local folder", and the outputs folder is not named.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

MODEL_HEADERS = ["name", "source", "available", "note"]


def model_rows(studio) -> list[list]:
    """A local model shows by its folder's name only."""
    return [[Path(m["name"]).name if m["source"] == "local folder" else m["name"],
             "bundled" if m["name"] == "demo" else m["source"], "yes" if m["available"] else "no",
             m.get("note", "")] for m in studio.models()]


def about(studio) -> str:
    info = studio.info()
    workers = "\n".join(
        f"- worker {i} on `{w['device']}`: " + ("ready" if w["ready"] else "not ready")
        + (", running a job" if w["running"] else "")
        for i, w in enumerate(info["workers"]))
    holding = "; ".join(f"{job}: {gpus}" for job, gpus in info.get("holding", {}).items()) or "none"
    return (f"**Devices:** {', '.join(info['devices'])} (one worker process each; jobs run one at a time per "
            f"device).  \n**GPU policy:** `{info.get('gpu_policy', 'one-per-job')}`: {info.get('gpu_policy_note', '')} "
            f"(set with `python app.py --gpu-policy`).  \n**GPUs held by running jobs:** {holding}  \n**Precision:** auto (fp16 on GPUs, fp32 on the CPU) unless a job says otherwise.  \n"
            f"**Limits:** at most {info['max_frames']} frames per video; uploads up to {info['max_upload_mb']} MB.  \n"
            f"**Queued jobs:** {info['queued']}\n\n**Workers:**\n{workers}\n\n"
            "Finished videos are kept until deleted from the Jobs tab; uploads and history stay on the server. "
            "Share links (`--share`) need internet access; models not on this machine must be downloaded "
            "beforehand (see the README).")


def create_demo(studio) -> gr.Blocks:
    with gr.Blocks() as demo:
        models = gr.Dataframe(value=lambda: model_rows(studio), headers=MODEL_HEADERS, type="array",
                              interactive=False, label="Configured models")
        text = gr.Markdown(lambda: about(studio))
        gr.Button("Refresh", size="sm").click(lambda: (model_rows(studio), about(studio)), None, [models, text],
                                              api_name="settings", concurrency_limit=None)
    return demo
