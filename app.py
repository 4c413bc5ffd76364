"""Gen-L Studio: `python app.py` serves the web app on http://127.0.0.1:7860 (see --help)."""
from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

from ui.css import CSS  # the page's styles (phone layout included); no Gradio import


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Gen-L Studio web app")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="public gradio.live link (needs internet)")
    p.add_argument("--auth", default=os.environ.get("GENL_AUTH", ""), help="user:pass (or env GENL_AUTH)")
    p.add_argument("--max-frames", type=int, default=1024)
    p.add_argument("--max-upload-mb", type=int, default=500)
    p.add_argument("--outputs", default="outputs",
                   help="results/ (served: videos, thumbnails, settings) and private/ (history, uploads, caches)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, or a list like cuda:0,cuda:1")
    p.add_argument("--gpu-policy", choices=["one-per-job", "all-on-one"], default="one-per-job",
                   help="one-per-job: a job per GPU (many short jobs); all-on-one: every GPU on one job (long jobs)")
    p.add_argument("--models", default="", help="comma-separated hub ids or folders to offer besides the demo")
    p.add_argument("--model-root", action="append", default=[],
                   help="a folder whose model subfolders users may name in the model field (repeatable)")
    p.add_argument("--tiny-decoder", default="", help="local TAESD folder for sharper live previews")
    args = p.parse_args(argv)
    if args.auth and ":" not in args.auth:
        p.error("--auth must look like user:password")
    return args


def build(args, models=None, job_fn=None):
    """The Studio (workers, history) and the Blocks; the tabs only talk to the Studio."""
    outputs = Path(args.outputs).resolve()
    # Gradio serves its own temp folder (uploads, copies of results) under random names: keep it out of both
    # results/ (served to everyone) and private/ (blocked).
    os.environ.setdefault("GRADIO_TEMP_DIR", str(outputs / "gradio-tmp"))
    if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true"):
        import spaces  # noqa: F401  (on ZeroGPU it must be imported before torch)
    import gradio as gr

    from genl.jobs import Studio
    from genl.jobs.studio import detect_devices, is_zero_gpu
    from ui import tab_edit, tab_jobs, tab_masks, tab_pose, tab_settings, tab_text, tab_tune

    models = models or [m for m in args.models.split(",") if m.strip()]
    devices = ["cuda"] if is_zero_gpu() else detect_devices(args.device)
    studio = Studio(outputs, devices=devices, max_frames=args.max_frames, max_upload_mb=args.max_upload_mb,
                    tiny_decoder=args.tiny_decoder, models=models, model_roots=args.model_root,
                    gpu_policy=getattr(args, "gpu_policy", "one-per-job"),
                    **({"job_fn": job_fn} if job_fn else {}))
    with gr.Blocks(title="Gen-L Studio") as demo:
        gr.Markdown("# Gen-L Studio\nLong videos from short-video diffusion models with multiple prompts "
                    "(Gen-L-Video: temporal co-denoising).")
        targets = {}  # tab id -> (title, the fields a job's settings load into): the Jobs tab fills them
        with gr.Tabs() as tabs:
            for key, title, tab in [("text", "Text → video", tab_text), ("edit", "Edit a video", tab_edit),
                                    ("masks", "Edit anything", tab_masks), ("tune", "Tune on a video", tab_tune),
                                    ("pose", "Pose / edge control", tab_pose), ("jobs", "Jobs", tab_jobs),
                                    ("settings", "Settings / About", tab_settings)]:
                with gr.Tab(title, id=key):
                    if tab is tab_jobs:
                        tab.create_demo(studio, tabs=tabs, targets=targets)
                        continue
                    made = tab.create_demo(studio)
                    if getattr(made, "loadable", None) is not None:
                        targets[key] = (title, made.loadable)
    demo.queue(default_concurrency_limit=None)  # UI events unlimited; GPU events set their own limit
    return studio, demo


def launch(demo, args, **kwargs):
    """Only finished results are served; the private folder (history, uploads, caches) is blocked outright."""
    outputs = Path(args.outputs).resolve()
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    return demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                       allowed_paths=[str(outputs / "results")], blocked_paths=[str(outputs / "private")],
                       max_file_size=f"{args.max_upload_mb}mb", css=CSS, show_error=True, **kwargs)


def _stop_on_sigterm() -> None:
    """SIGTERM takes the same path as Ctrl-C: Gradio closes the server, then `studio.close()` stops the
    workers (cancel, a few seconds' grace, terminate). Without this, SIGTERM skips every `finally`."""
    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv=None, job_fn=None) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop the workers. `job_fn`: tests run the same path with a
    cheap job function."""
    args = parse_args(argv)
    _stop_on_sigterm()
    try:
        studio, demo = build(args, job_fn=job_fn)
    except (ValueError, RuntimeError) as err:  # e.g. another studio already uses this outputs folder
        raise SystemExit(f"error: {err}")
    try:
        launch(demo, args)
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
        studio.close()


if __name__ == "__main__":
    main()
