"""Tests for genl/video_io.py: round trips through real codecs, resampling, bad uploads.

Every video is synthesised here (a square moving across a flat background), so the
tests are offline and take a few seconds.
"""

import shutil
import subprocess

import av
import numpy as np
import pytest
import torch
from PIL import Image

from genl import video_io as vio


def moving_square(num_frames=24, height=60, width=100):
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    frames[...] = (30, 60, 90)
    for i in range(num_frames):
        x = (3 * i) % (width - 20)
        frames[i, 10:30, x:x + 20] = (250, 200, 20)
    return frames


def mean_abs(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 1 s, 24 fps, 100x60 mp4 written by write_mp4, and the frames it came from."""
    frames = moving_square()
    path = vio.write_mp4(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", fps=24)
    return path, frames


def write_with_pyav(frames, path, codec, fps, **options):
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    return path


# ----------------------------------------------------------------------------- mp4


def test_mp4_round_trip(clip):
    path, src = clip
    frames, fps = vio.read_video(path, multiple=1)
    assert frames.dtype == np.uint8 and frames.shape == (24, 60, 100, 3)
    assert fps == pytest.approx(24)
    assert mean_abs(frames, src) < 6


def test_mp4_is_browser_playable(clip):
    path, _ = clip
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        assert cc.name == "h264" and cc.pix_fmt == "yuv420p"
        frame = next(c.decode(video=0))
        assert frame.colorspace == 6 and frame.color_range == 1  # tagged BT.601, limited
    head = path.read_bytes()[:64]
    assert head.index(b"moov") < 64  # faststart: index before the media data


def test_probe(clip):
    info = vio.probe_video(clip[0])
    assert (info.num_frames, info.width, info.height) == (24, 100, 60)
    assert info.fps == pytest.approx(24) and info.duration == pytest.approx(1.0, abs=0.05)


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = vio.write_mp4(moving_square(4), tmp_path / "a.mp4")
    before = path.read_bytes()
    calls = []

    def dies_on_third_frame(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    real = av.VideoFrame.from_ndarray
    monkeypatch.setattr(av.VideoFrame, "from_ndarray", dies_on_third_frame)
    with pytest.raises(OSError):
        vio.write_mp4(moving_square(8), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_odd_dimensions_are_made_even(tmp_path):
    path = vio.write_mp4(moving_square(6, 59, 99), tmp_path / "odd.mp4")
    info = vio.probe_video(path)
    assert (info.width, info.height) == (98, 58)


# ----------------------------------------------------------------------------- time


def test_fps_resampling_picks_every_third_frame(clip):
    path, src = clip
    frames, fps = vio.read_video(path, fps=8, multiple=1)
    assert fps == 8 and len(frames) == 8
    for k in range(8):
        assert mean_abs(frames[k], src[3 * k]) < 6


def test_fps_upsampling_repeats_frames(clip):
    frames, _ = vio.read_video(clip[0], fps=48, multiple=1)
    assert len(frames) == 48


def test_trim_and_max_frames(clip):
    path, src = clip
    frames, _ = vio.read_video(path, start=0.5, end=0.75, multiple=1)
    assert len(frames) == 6
    assert mean_abs(frames[0], src[12]) < 6
    frames, _ = vio.read_video(path, start=0.25, max_frames=4, multiple=1)
    assert len(frames) == 4 and mean_abs(frames[0], src[6]) < 6
    frames, _ = vio.read_video(path, fps=8, start=0.5, multiple=1)
    assert len(frames) == 4 and mean_abs(frames[1], src[15]) < 6


def test_seek_and_resample_pick_the_right_frames(tmp_path):
    """Frame i is grey level 3*i, lossless, keyframes every 12 frames so a start time
    lands mid-GOP: the seek goes back to a keyframe and the frames before start are dropped."""
    src = np.repeat(np.arange(0, 216, 3, dtype=np.uint8), 32 * 48 * 3).reshape(72, 32, 48, 3)
    path = write_with_pyav(src, tmp_path / "ids.mp4", "libx264", 24, crf="0", g="12",
                           keyint_min="12", sc_threshold="0")

    def ids(**kw):
        frames, _ = vio.read_video(path, multiple=1, **kw)
        return [round(v / 3) for v in frames[:, 5, 5, 1].tolist()]

    assert ids(start=1.3) == list(range(32, 72))
    assert ids(start=1.3, fps=8) == list(range(31, 72, 3))
    assert ids(start=1.0, fps=12, max_frames=3) == [24, 26, 28]
    assert ids(fps=7.3)[:6] == [0, 3, 7, 10, 13, 16] and len(ids(fps=7.3)) == 22


def test_trim_past_the_end_says_so(clip):
    with pytest.raises(ValueError, match="clip.mp4.*no frames lie between"):
        vio.read_video(clip[0], start=5)
    with pytest.raises(ValueError, match="end must come after the start"):
        vio.read_video(clip[0], start=0.5, end=0.5)


# ----------------------------------------------------------------------------- size


def test_fit_size():
    assert vio.fit_size(100, 60, target_short_side=64) == (104, 64)
    assert vio.fit_size(1920, 1080, target_short_side=512) == (912, 512)
    assert vio.fit_size(1920, 1080, max_side=512) == (512, 288)
    assert vio.fit_size(100, 60) == (104, 64)
    assert vio.fit_size(100, 60, multiple=1) == (100, 60)
    with pytest.raises(ValueError):
        vio.fit_size(0, 60)


def test_read_resizes_to_multiple_of_8_keeping_aspect(clip):
    frames, _ = vio.read_video(clip[0], size=64)
    assert frames.shape[1:3] == (64, 104)
    assert frames.shape[2] / frames.shape[1] == pytest.approx(100 / 60, rel=0.05)
    frames, _ = vio.read_video(clip[0], size=(64, 48))
    assert frames.shape[1:3] == (48, 64)
    frames, _ = vio.read_video(clip[0])  # default still rounds for SD latents
    assert frames.shape[1:3] == (64, 104)


def test_resize_frames():
    out = vio.resize_frames(moving_square(3), 50, 30)
    assert out.shape == (3, 30, 50, 3) and out.dtype == np.uint8


# ----------------------------------------------------------------------------- other formats


def test_gif_write_and_read(tmp_path):
    src = moving_square(12, 48, 64)
    path = vio.write_gif(src, tmp_path / "preview.gif", fps=10)
    frames, fps = vio.read_video(path, multiple=1)
    assert frames.shape == src.shape and fps == pytest.approx(10)
    assert mean_abs(frames, src) < 6


def test_webm_read(tmp_path):
    src = moving_square(12, 48, 64)
    path = write_with_pyav(src, tmp_path / "clip.webm", "libvpx-vp9", 12)
    frames, fps = vio.read_video(path, multiple=1)
    assert frames.shape == src.shape and fps == pytest.approx(12)
    assert mean_abs(frames, src) < 6
    # webm timestamps are whole milliseconds; that must not add a frame at the end
    assert len(vio.read_video(path, fps=6)[0]) == 6


def test_png_folder_and_list(tmp_path):
    src = moving_square(11, 48, 64)
    paths = vio.save_frames_png(src, tmp_path / "frames")
    assert paths[0].name == "frame_00000.png" and len(paths) == 11
    frames, fps = vio.read_video(tmp_path / "frames", multiple=1)
    assert np.array_equal(frames, src) and fps == vio.DEFAULT_IMAGE_FPS
    assert np.array_equal(vio.read_frames_folder(paths[::-1], multiple=1), src[::-1])


def test_folder_sorts_numbers_naturally(tmp_path):
    for i in (1, 2, 10):
        Image.new("RGB", (16, 16), (i, 0, 0)).save(tmp_path / f"f{i}.png")
    frames = vio.read_frames_folder(tmp_path, multiple=1)
    assert list(frames[:, 0, 0, 0]) == [1, 2, 10]


@pytest.mark.parametrize("suffix, codec", [(".mov", "libx264"), (".mkv", "libx264"),
                                          (".avi", "mpeg4")])
def test_other_containers(tmp_path, suffix, codec):
    src = moving_square(8, 48, 64)
    frames, fps = vio.read_video(write_with_pyav(src, tmp_path / f"c{suffix}", codec, 8),
                                 multiple=1)
    assert frames.shape == src.shape and fps == pytest.approx(8)
    assert mean_abs(frames, src) < 6


def test_phone_rotation_tag_is_applied(tmp_path):
    """A portrait phone clip is stored landscape + a 90 degree tag; ffmpeg shows it upright."""
    src = moving_square(4, 48, 64)
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for f in src:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    info = vio.probe_video(path)
    assert (info.width, info.height) == (48, 64)
    frames, _ = vio.read_video(path, multiple=1)
    assert frames.shape == (4, 64, 48, 3)
    assert mean_abs(frames, np.rot90(src, 1, axes=(1, 2))) < 6
    frames, _ = vio.read_video(path, size=24)  # short side is the upright width
    assert frames.shape == (4, 32, 24, 3)


# ----------------------------------------------------------------------------- bad inputs


def _no_frames_avi(path):
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=red:s=16x16:r=8", "-frames:v", "0", "-c:v", "mpeg4", str(path)],
                   check=True)


@pytest.mark.parametrize("kind, reason", [
    ("missing", "does not exist"),
    ("empty", "the file is empty"),
    ("text", "not a video"),
    ("png", "still image"),
    ("truncated", "damaged"),
    ("no_frames", "no frames"),
    ("folder", "folder"),
])
def test_bad_inputs_raise_friendly_value_errors(tmp_path, clip, kind, reason):
    path = tmp_path / "upload.mp4"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("these are my holiday notes, not a video\n" * 20)
    elif kind == "png":
        Image.new("RGB", (32, 32), "red").save(path, format="PNG")
    elif kind == "truncated":
        data = clip[0].read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "no_frames":
        path = tmp_path / "upload.avi"
        _no_frames_avi(path)
    elif kind == "folder":
        path = tmp_path / "upload.mp4"
        path.mkdir()
    readers = [vio.read_video] if kind in ("truncated", "folder") else [vio.read_video,
                                                                        vio.probe_video]
    for read in readers:
        with pytest.raises(ValueError, match=reason) as err:
            read(path)
        assert path.name in str(err.value)
        assert not isinstance(err.value, av.FFmpegError)  # never ffmpeg's own wording


def test_probe_of_truncated_file_still_a_value_error(tmp_path, clip):
    path = tmp_path / "half.mp4"
    path.write_bytes(clip[0].read_bytes()[:200])
    with pytest.raises(ValueError, match="half.mp4"):
        vio.probe_video(path)


def test_bad_frame_arrays(tmp_path):
    with pytest.raises(ValueError, match="frames, height, width, 3"):
        vio.write_mp4(np.zeros((2, 8, 8, 4), np.uint8), tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="tensor_to_frames"):
        vio.write_gif(np.zeros((2, 8, 8, 3), np.float32), tmp_path / "x.gif")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="has no images"):
        vio.read_frames_folder(tmp_path)


# ----------------------------------------------------------------------------- tensors, hash


def test_tensor_round_trip():
    src = moving_square(3, 16, 24)
    t = vio.frames_to_tensor(src)
    assert t.shape == (3, 3, 16, 24) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1
    assert np.array_equal(vio.tensor_to_frames(t), src)
    assert np.array_equal(vio.tensor_to_frames(t.permute(1, 0, 2, 3)[None]), src)
    assert vio.frames_to_tensor(src, dtype=torch.float16).dtype == torch.float16
    clamped = vio.tensor_to_frames(torch.full((1, 3, 2, 2), 5.0))
    assert clamped.max() == 255
    with pytest.raises(ValueError, match="batch of 2"):
        vio.tensor_to_frames(torch.zeros(2, 3, 1, 2, 2))


def test_video_hash(clip, tmp_path):
    copy = tmp_path / "copy.mp4"
    shutil.copy(clip[0], copy)
    assert vio.video_hash(copy) == vio.video_hash(clip[0])
    assert len(vio.video_hash(copy)) == 64
    copy.write_bytes(copy.read_bytes() + b"x")
    assert vio.video_hash(copy) != vio.video_hash(clip[0])
