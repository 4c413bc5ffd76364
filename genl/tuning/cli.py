"""`python -m genl tune ...` and the `--tuned FOLDER` option of `python -m genl edit`.

genl/cli.py wires them: `add_tune_parser(sub)` next to generate/edit, `add_tuned_edit_args(edit_parser)`
(the edit then runs as any edit, through run_job, with EditSettings.tuned), and `run_tune(args)`.
"""
from __future__ import annotations

import sys
import time

from .settings import DEFAULT_STORE, METHODS, OPTIMIZERS, TuneSettings

_DEFAULTS = TuneSettings()


def add_tune_parser(subparsers):
    p = subparsers.add_parser("tune", help="one-shot tune an image model on a long video (with clip identifiers)")
    p.add_argument("--video", required=True)
    p.add_argument("--start", type=float, default=_DEFAULTS.start, help="trim start, seconds")
    p.add_argument("--end", type=float, default=_DEFAULTS.end, help="trim end, seconds")
    p.add_argument("--prompt", required=True, help="what the video shows: a prompt or a timeline '0-47: ... | ...'")
    p.add_argument("--model", default=_DEFAULTS.model, help="image model: hub id, folder, or 'demo'")
    p.add_argument("-M", "--clip-length", type=int, default=_DEFAULTS.clip_length)
    p.add_argument("-S", "--stride", type=int, default=_DEFAULTS.stride)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--fps", type=float, default=_DEFAULTS.fps)
    p.add_argument("--method", choices=METHODS, default=_DEFAULTS.method, help="lora (default) or full fine-tuning")
    p.add_argument("--lora-rank", type=int, default=_DEFAULTS.lora_rank)
    p.add_argument("--lr", type=float, default=_DEFAULTS.learning_rate, help="per clip; scaled by the batch size")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size)
    p.add_argument("--epochs", type=int, default=_DEFAULTS.epochs)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--identifier-dropout", type=float, default=_DEFAULTS.identifier_dropout)
    p.add_argument("--checkpoint-every", type=int, default=_DEFAULTS.checkpoint_every)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=_DEFAULTS.optimizer)
    p.add_argument("--precision", choices=["auto", "fp16", "bf16", "fp32"], default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", default=DEFAULT_STORE, help="folder of tunings (one sub-folder per video+settings)")
    p.add_argument("--list", action="store_true", help="list the tunings in --store and exit")
    return p


def add_tuned_edit_args(edit_parser) -> None:
    edit_parser.add_argument("--tuned", default="", help="tuning folder (or its name in outputs/tunings) from "
                                                         "`python -m genl tune`: sample with the tuned model")
    edit_parser.add_argument("--no-identifiers", action="store_true", help="ablation: sample without e^i")
    edit_parser.add_argument("--from-noise", action="store_true",
                             help="with --tuned: start from random noise instead of the video's inversion")


def settings_from_args(args) -> TuneSettings:
    demo = args.model == "demo"
    return TuneSettings(video=args.video, start=args.start, end=args.end, store_dir=args.store, prompt=args.prompt, model=args.model, clip_length=args.clip_length,
                        stride=args.stride, width=args.width or (128 if demo else 512),
                        height=args.height or (128 if demo else 512), fps=args.fps, method=args.method,
                        lora_rank=args.lora_rank, learning_rate=args.lr, batch_size=args.batch_size,
                        epochs=args.epochs, max_steps=args.max_steps, identifier_dropout=args.identifier_dropout,
                        checkpoint_every=args.checkpoint_every, optimizer=args.optimizer,
                        precision=args.precision, device=args.device, seed=args.seed)


def run_tune(args) -> int:
    from .store import TuningStore

    if args.list:
        for e in TuningStore(args.store).list():
            state = "done" if e["finished"] else f"stopped at {e['step']}/{e['total']}"
            print(f"{e['folder']}  {e['method']}  {state}  loss {e['loss']:.4f}  {e['prompt']}")
        return 0
    from ..validation import check_numbers
    from .jobs import run_tune_job

    last = [0.0]

    def report(event):
        if time.monotonic() - last[0] > 2 or event["step"] == event["total"]:
            last[0] = time.monotonic()
            eta = f"{event['eta']:.0f}s" if event["eta"] is not None else "?"
            print(f"step {event['step']}/{event['total']} loss {event['loss']:.4f} "
                  f"{event['rate']:.2f} steps/s eta {eta}", file=sys.stderr)

    try:
        settings = settings_from_args(args)
        check_numbers(settings)
        out = run_tune_job(settings, args.store, progress=report)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled (the last checkpoint is kept; run the same command to resume)", file=sys.stderr)
        return 130
    print(f"tuned {out['step']} steps ({out['stop_reason']}): {out['folder']}")
    return 0
