"""Per-step cost of the web page's default text->video job with the demo model on this CPU (issue 12).

The default job is 64 frames, 128x128, M=16, S=4, guidance 7.5 (CFG doubles every UNet call), 50 DDIM steps.
Its cost is (steps x one co-denoising evaluation) + text encoding + VAE decoding; each variant here runs
a few steps and times every step from the pipeline's progress callback, in wall-clock and in this process's
CPU seconds (the second is what to trust when other work shares the machine). Variants change one lever:
S, windows per UNet call, threads, channels-last.

    python bench/cpu_speed_demo.py --out bench/results            # unit costs (robust on a busy machine)
    python bench/cpu_speed_demo.py --full --steps 2 --out ...      # whole jobs, per-step timing (idle machine)

Unit mode times the parts a job is made of, each the minimum of a few repeats so that other processes' bursts
drop out: one UNet call on k stacked windows (k x M frames x 2 for CFG), per thread count and memory format,
and the VAE decoding of 8 frames. A job then costs about steps x windows(S) x (UNet time per window) +
64 x (decode time per frame).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from genl.settings import CoDenoiseSettings  # noqa: E402

PROMPT = "0-31: a red circle moving right over grass | 32-63: a blue square moving left over sand"

VARIANTS = [  # name, S, windows per call, threads, channels_last
    ("default S=4, 1 window/call", 4, 1, 2, False),
    ("S=4, 4 windows/call", 4, 4, 2, False),
    ("S=4, 13 windows/call", 4, 13, 2, False),
    ("S=4, 1 thread", 4, 1, 1, False),
    ("S=4, 4 windows/call, channels-last", 4, 4, 2, True),
    ("S=8, 7 windows/call", 8, 7, 2, False),
    ("S=16, 4 windows/call", 16, 4, 2, False),
]


def time_run(pipe, timeline, steps: int, stride: int, per_call: int) -> dict:
    """Seconds (wall, CPU) per denoising step and for decoding, read from the progress callback."""
    marks = []

    def callback(event):  # genl.progress's one progress dict
        marks.append((event["stage"], time.perf_counter(), time.process_time()))

    t0, c0 = time.perf_counter(), time.process_time()
    pipe(timeline, num_frames=64, height=128, width=128, num_inference_steps=steps, guidance_scale=7.5,
         codenoise=CoDenoiseSettings(clip_length=16, stride=stride, windows_per_call=per_call), seed=0,
         callback=callback)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    den = [(w, c) for s, w, c in marks if s == "denoise"]
    steps_w = np.diff([t0] + [w for w, _ in den])
    steps_c = np.diff([c0] + [c for _, c in den])
    last_w, last_c = den[-1]
    return {"step_wall": float(np.min(steps_w)), "step_cpu": float(np.min(steps_c)),
            "first_step_wall": float(steps_w[0]), "decode_wall": wall - (last_w - t0),
            "decode_cpu": cpu - (last_c - c0), "total_wall": wall}


# (threads, windows per call, channels-last); "one" is for a busy machine, where two threads spin-wait on
# each other and their timings say more about the neighbours than about the model
UNIT_CASES = {"all": [(2, 1, False), (2, 2, False), (2, 4, False), (1, 1, False), (1, 4, False), (2, 4, True)],
              "one": [(1, 1, False), (1, 4, False), (1, 4, True), (1, 13, False)],
              "ab": [(1, 1, False), (1, 4, False), (1, 4, True), (2, 1, False), (2, 4, False), (2, 4, True)]}


def _best(fn, repeats: int) -> float:
    fn()  # warm-up: first calls allocate
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@torch.no_grad()
def unit_costs(pipe, repeats: int, threads_set: str = "all") -> list[dict]:
    """Seconds per window of one UNet call with k windows stacked, and per decoded frame."""
    unet, rows = pipe.unet, []
    states = torch.randn(1, pipe.tokenizer.model_max_length, pipe.text_encoder.config.hidden_size)
    for threads, k, channels_last in UNIT_CASES[threads_set]:
        torch.set_num_threads(threads)
        unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        x = torch.randn(2 * k, 4, 16, 16, 16)  # CFG halves x k windows, (C, M, h, w)
        cond = states.expand(2 * k * 16, -1, -1)
        t = torch.tensor(500)
        seconds = _best(lambda: unet(x, t, encoder_hidden_states=cond), repeats)
        rows.append({"part": "unet", "threads": threads, "windows_per_call": k, "channels_last": channels_last,
                     "seconds_per_window": seconds / k, "load": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), flush=True)
    unet.to(memory_format=torch.contiguous_format)
    for threads in sorted({c[0] for c in UNIT_CASES[threads_set]}, reverse=True):
        torch.set_num_threads(threads)
        z = torch.randn(8, 4, 16, 16)
        seconds = _best(lambda: pipe.vae.decode(z), repeats)
        rows.append({"part": "vae decode", "threads": threads, "seconds_per_frame": seconds / 8,
                     "load": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--variants", default="", help="comma-separated indices into VARIANTS (default all)")
    ap.add_argument("--full", action="store_true", help="time whole jobs (needs an otherwise idle machine)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="all", choices=sorted(UNIT_CASES), help="unit cases to time")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    from genl.models import ModelManager
    from genl.timeline import load_timeline

    pipe = ModelManager().get("animatediff", "demo", device="cpu")
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.full:
        rows = unit_costs(pipe, args.repeats, args.threads)
        (out / "cpu_speed_demo_units.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
        return
    timeline = load_timeline(PROMPT)
    chosen = [VARIANTS[int(i)] for i in args.variants.split(",")] if args.variants else VARIANTS
    rows = []
    for name, stride, per_call, threads, channels_last in chosen:
        torch.set_num_threads(threads)
        pipe.unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        load = os.getloadavg()[0]
        row = {"variant": name, "S": stride, "windows_per_call": per_call, "threads": threads,
               "channels_last": channels_last, "load_before": load} | time_run(pipe, timeline, args.steps,
                                                                              stride, per_call)
        rows.append(row)
        print(json.dumps(row), flush=True)
    info |= {"steps_timed": args.steps, "prompt": PROMPT}
    (out / "cpu_speed_demo.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
