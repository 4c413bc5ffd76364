"""Masked edit ("edit anything") on the demo world: does the outside stay, does the inside take the prompt?

For each colour/shape edit of a rendered shapes-world clip, with the bundled demo model and the demo world's
masks (object_masks(..., demo=True)), we measure
  - outside the mask: the decoded latents before the pixel composite (only the latent paste of the source's
    inversion levels at work) against the source, next to the VAE round-trip error of the source itself; and the
    final frames (after the composite with MaskSettings' feathered mask), which must equal the source there;
  - inside: the share of frames whose object genl.demo.world_parse reads as the target colour / shape, and the
    background kept.

    python bench/quality_masked_edit.py --out bench/results            # CPU, a few minutes
    python bench/quality_masked_edit.py --smoke --out /tmp/qme         # one edit, 2 steps: checks the script
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genl.conditions.mask_settings import MaskSettings  # noqa: E402
from genl.conditions.masks import object_masks  # noqa: E402
from genl.demo.world import ClipSpec, render_clip  # noqa: E402
from genl.demo.world_parse import parse_frame  # noqa: E402
from genl.inversion import InversionCache  # noqa: E402
from genl.models import ModelManager, demo_available  # noqa: E402
from genl.pipelines.common import decode_latents, encode_frames  # noqa: E402
from genl.pipelines.edit import latent_mask  # noqa: E402
from genl.settings import CoDenoiseSettings  # noqa: E402
from genl.timeline import Timeline  # noqa: E402

# (source clip, object prompt, target colour, target shape): colour edits, shape edits, both
EDITS = [
    (("red", "circle", "right", "grass"), "the red circle", "blue", "circle"),
    (("red", "circle", "right", "grass"), "the red circle", "green", "square"),
    (("red", "circle", "right", "grass"), "the red circle", "red", "square"),
    (("yellow", "square", "left", "sand"), "the yellow square", "purple", "square"),
]


def caption(colour, shape, direction, background) -> str:
    return f"a {colour} {shape} moving {direction} over {background}"


def outside_pixels(masks: np.ndarray, latent_hw, size: int) -> np.ndarray:
    """(F, H, W) bool: pixels whose latent cell the mask does not touch (there the latent paste keeps the source)."""
    keep = latent_mask(masks, latent_hw, "cpu")[0, 0]  # (F, h, w) share of each cell the object covers
    return (F.interpolate(keep[:, None], size=(size, size), mode="nearest")[:, 0] == 0).numpy()


def mean_abs(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1)[where].mean())


def most_common(labels: list[str]) -> str:
    """The parser's commonest reading of the edited object, with its share of frames."""
    values, counts = np.unique(labels, return_counts=True)
    return f"{values[counts.argmax()]} ({counts.max()}/{len(labels)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--mask-method", default="auto", choices=("auto", "colour"),
                    help="auto: the bundled demo detectors (GroundingDINO + SAM 2); colour: the labelled colour method")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if not demo_available():
        raise SystemExit("assets/demo-model is missing")
    edits = EDITS[:1] if args.smoke else EDITS
    steps = 2 if args.smoke else args.steps
    torch.manual_seed(0)
    pipe = ModelManager().get("edit", "demo", device="cpu")
    codenoise = CoDenoiseSettings(clip_length=8, stride=4)
    mask_settings = MaskSettings(method=args.mask_method)  # the defaults a user gets: 2 px dilation, 1.5 px feather
    cache = InversionCache(tempfile.mkdtemp(prefix="masked-edit-inversion-"))  # each source inverted once
    rows, started = [], time.time()
    for (colour, shape, direction, background), obj, new_colour, new_shape in edits:
        t0 = time.time()
        frames = render_clip(ClipSpec(colour, shape, direction, background, 0.3, 0.5, 0.3, seed=0), args.frames,
                             args.size)
        found = object_masks(frames, obj, demo=True, settings=mask_settings)
        source = caption(colour, shape, direction, background)
        target = caption(new_colour, new_shape, direction, background)
        out = pipe(frames, Timeline.parse(source), Timeline.parse(target), num_inference_steps=steps,
                   codenoise=codenoise, masks=found.masks, mask_feather=found.feather, guidance_scale=7.5,
                   cache=cache, cache_id={"video": f"{colour}-{shape}-{direction}-{background}-{args.frames}",
                                          "model": "demo"})
        with torch.no_grad():
            round_trip = decode_latents(pipe.vae, encode_frames(pipe.vae, frames, "cpu"))
            before = decode_latents(pipe.vae, out.latents)  # the latent paste alone, before the pixel composite
        outside = outside_pixels(found.masks, tuple(out.latents.shape[-2:]), args.size)
        untouched = found.soft == 0  # where the composite's alpha is 0
        parsed = [parse_frame(f) for f in out.frames]
        row = {
            "source": source, "object": obj, "target": target, "method": found.method,
            "mask_share": round(float(found.masks.mean()), 4), "outside_share": round(float(outside.mean()), 4),
            "vae_round_trip_err": round(mean_abs(round_trip, frames, outside), 3),
            "latent_paste_err": round(mean_abs(before, frames, outside), 3),
            "latent_paste_vs_round_trip_err": round(mean_abs(before, round_trip, outside), 3),
            "final_outside_max_err": int(np.abs(out.frames.astype(int) - frames.astype(int))[untouched].max()),
            "colour_ok": round(float(np.mean([p.colour == new_colour for p in parsed])), 3),
            "shape_ok": round(float(np.mean([p.shape == new_shape for p in parsed])), 3),
            "background_ok": round(float(np.mean([p.background == background for p in parsed])), 3),
            "parsed_as": most_common([f"{p.colour} {p.shape}" for p in parsed]),
            "seconds": round(time.time() - t0, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    write(rows, args, steps, time.time() - started)


def write(rows, args, steps, seconds):
    import diffusers

    try:
        commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        commit = "unknown"
    meta = {"device": platform.processor() or platform.machine(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "commit": commit, "frames": args.frames, "size": args.size,
            "steps": steps, "M": 8, "S": 4, "guidance": 7.5,
            "mask": f"demo world (object_masks demo=True, method {args.mask_method}: "
                    f"{rows[0]['method'] if rows else '-'}), MaskSettings defaults (dilate 2 px, feather 1.5 px)",
            "seconds": round(seconds, 1), "smoke": args.smoke}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = (("masked_edit_smoke" if args.smoke else "masked_edit")
            + ("_demo_detectors" if args.mask_method == "auto" else ""))
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    lines = [
        "# Masked edit on the demo world", "",
        f"Demo model on the CPU ({meta['device']}), {args.frames} frames {args.size}x{args.size}, {steps} DDIM steps, "
        f"M=8 S=4, guidance 7.5, torch {meta['torch']}, diffusers {meta['diffusers']}, commit {commit}; "
        f"masks: {meta['mask']}. Errors are mean |difference| in 0..255 over the pixels whose latent cell the mask "
        "does not touch; 'final max' is the largest error where the composite's alpha is 0.", "",
        "| edit | object | VAE round trip | latent paste | paste vs round trip | final max | colour ok | shape ok "
        "| background ok | parsed as |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['source']} -> {r['target']} | {r['object']} | {r['vae_round_trip_err']} | "
                     f"{r['latent_paste_err']} | {r['latent_paste_vs_round_trip_err']} | {r['final_outside_max_err']} | "
                     f"{r['colour_ok']:.2f} | {r['shape_ok']:.2f} | {r['background_ok']:.2f} | {r['parsed_as']} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
