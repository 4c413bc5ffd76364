"""Render the example videos the edit tabs offer: `python assets/examples/make_examples.py`.

Synthetic shapes-world clips (genl.demo.world), 48 frames at 128x128 and 8 fps, so the bundled demo model and
the colour mask stand-in understand them. Deterministic: the same files every run.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from genl.video_io import write_mp4  # noqa: E402
from genl.demo.world import LongVideoSpec, Segment, render_long_video  # noqa: E402

EXAMPLES = {
    "red_circle_grass.mp4": LongVideoSpec((Segment(0, 47, "red", "circle", "right", "grass"),),
                                          x0=0.3, y0=0.55, size=0.25, seed=7),
    "blue_square_sand.mp4": LongVideoSpec((Segment(0, 23, "blue", "square", "bounce", "sand"),
                                           Segment(24, 47, "blue", "square", "left", "sand")),
                                          x0=0.6, y0=0.6, size=0.22, seed=3),
}


def main() -> None:
    for name, spec in EXAMPLES.items():
        path = write_mp4(render_long_video(spec, size=128), HERE / name, fps=8)
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB, {spec.num_frames} frames)")


if __name__ == "__main__":
    main()
