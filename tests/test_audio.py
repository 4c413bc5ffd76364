"""Edits keep the source's sound: trimmed to the edited range and muxed into the output mp4."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from genl.video_io import has_audio, mux_audio, write_mp4

RATE, TONE = 22050, 440.0


def video_with_tone(path, seconds=3.0, fps=8):
    """A tiny mp4 whose sound is a 440 Hz sine for the first half and 880 Hz for the second."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width = vs.height = 32
        vs.pix_fmt = "yuv420p"
        aus = out.add_stream("aac", rate=RATE)
        aus.layout = "mono"
        for i in range(int(seconds * fps)):
            img = np.full((32, 32, 3), i * 8 % 255, np.uint8)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode())
        t = np.arange(int(seconds * RATE)) / RATE
        tone = np.where(t < seconds / 2, np.sin(2 * np.pi * TONE * t), np.sin(2 * np.pi * 2 * TONE * t))
        tone = (0.5 * tone).astype(np.float32)
        for i in range(0, len(tone), 1024):
            f = av.AudioFrame.from_ndarray(tone[None, i:i + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts = RATE, i
            out.mux(aus.encode(f))
        out.mux(aus.encode())


def read_audio(path):
    with av.open(str(path)) as c:
        chunks = [f.to_ndarray().mean(axis=0) for f in c.decode(c.streams.audio[0])]
        rate = c.streams.audio[0].codec_context.sample_rate
    return np.concatenate(chunks), rate


def peak_hz(x, rate):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[spec.argmax()]


def test_edit_output_keeps_the_trimmed_tone(tmp_path):
    src = tmp_path / "tone.mp4"
    video_with_tone(src)
    # the edit used 1.0 s .. 2.0 s (8 frames at 8 fps): 440 Hz first, 880 Hz after 1.5 s
    out = write_mp4(np.zeros((8, 32, 32, 3), np.uint8), tmp_path / "video.mp4", fps=8)
    assert not has_audio(out)
    assert mux_audio(out, src, start=1.0, duration=1.0)
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        assert sum(1 for _ in c.decode(c.streams.video[0])) == 8  # the video is untouched
    sound, rate = read_audio(out)
    assert abs(len(sound) / rate - 1.0) < 0.1  # trimmed to the edited range
    half = len(sound) // 2
    assert abs(peak_hz(sound[200:half - 200], rate) - TONE) < 15
    assert abs(peak_hz(sound[half + 200:-200], rate) - 2 * TONE) < 15


def test_silent_source_leaves_the_video_alone(tmp_path):
    src = write_mp4(np.zeros((8, 32, 32, 3), np.uint8), tmp_path / "silent.mp4", fps=8)
    out = write_mp4(np.ones((8, 32, 32, 3), np.uint8), tmp_path / "video.mp4", fps=8)
    before = out.read_bytes()
    assert not mux_audio(out, src, 0.0, 1.0)
    assert out.read_bytes() == before
