"""Reading and writing videos for Gen-L Studio.

Every other module sees a video as a numpy ``uint8`` array of shape (F, H, W, 3), RGB,
plus a frame rate. This is the only module that talks to PyAV (ffmpeg), so that codec
quirks, odd files and ffmpeg's error messages stay in one place: whatever a user
uploads, they either get frames or a ``ValueError`` that says, in plain words, what is
wrong with their file.

Outputs are written so that browsers play them (H.264, yuv420p, even sizes, moov atom
first) and atomically (temp file + ``os.replace``), so a crash or a full disk never
leaves a half-written video where the UI or the job history expects a whole one.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence, Union

import av
import numpy as np
import torch
from PIL import Image

PathLike = Union[str, os.PathLike]
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_IMAGE_FPS = 8.0  # image folders carry no timing; 8 fps is the usual SD-video rate
_EPS = 1e-6  # seconds; absorbs float error when comparing timestamps
_SMPTE170M, _LIMITED_RANGE = 6, 1  # ffmpeg's AVColorSpace/AVColorRange codes for BT.601


@dataclass
class VideoInfo:
    fps: float
    num_frames: int
    width: int
    height: int
    duration: float  # seconds


# ----------------------------------------------------------------------------- errors


def _unreadable(path: PathLike, reason: str) -> ValueError:
    return ValueError(f"Could not read '{Path(path).name}' as a video: {reason}")


def _check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise _unreadable(p, f"the file does not exist (looked for {p}).")
    if p.is_dir():
        raise _unreadable(p, "it is a folder, not a file.")
    if p.stat().st_size == 0:
        raise _unreadable(p, "the file is empty.")
    return p


def _open_video(path: PathLike):
    """Open ``path`` and return (container, video_stream), or raise a friendly ValueError.

    ffmpeg happily "decodes" a single PNG/JPEG as a one-frame video, whatever its
    extension, so still images are rejected here by demuxer name rather than later
    by a confusing "video has 1 frame".
    """
    p = _check_file(path)
    try:
        container = av.open(str(p))
    except av.FFmpegError as e:
        raise _unreadable(p, "the file is damaged or is not a video "
                             "(supported: mp4, webm, mov, mkv, avi, gif).") from e
    fmt = container.format.name
    if (fmt == "image2" or fmt.endswith("_pipe")) and fmt != "gif_pipe":
        container.close()
        raise _unreadable(p, "it is a still image, not a video. Upload a video file (mp4, webm, mov, mkv, avi "
                             "or gif); to animate photos, join them into a short video or an animated gif "
                             "first.")
    if not container.streams.video:
        empty = not container.streams
        container.close()
        # An mp4 whose writer stopped before the first frame has no tracks at all.
        raise _unreadable(p, "the video has no frames." if empty else
                             "the file has no video track (is it audio only?).")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _stream_fps(stream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    return None


# ----------------------------------------------------------------------------- sizes


def _round_to(x: float, multiple: int) -> int:
    # Half up, not Python's half-to-even, so 100x60 -> 104x64 rather than 96x64.
    return max(multiple, int(x / multiple + 0.5) * multiple)


def fit_size(width: int, height: int, target_short_side: int | None = None,
             max_side: int | None = None, multiple: int = 8) -> tuple[int, int]:
    """Output (w, h) keeping the aspect of (width, height).

    The short side is scaled to ``target_short_side`` (if given), then the whole frame
    shrinks so the long side is at most ``max_side`` (if given), then both sides are
    rounded to ``multiple``: 8 because SD's VAE downsamples by 8, so latents need it.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"A video size must be positive, got {width}x{height}.")
    multiple = max(1, int(multiple or 1))
    scale = 1.0
    if target_short_side is not None:
        if target_short_side <= 0:
            raise ValueError(f"The target size must be positive, got {target_short_side}.")
        scale = target_short_side / min(width, height)
    if max_side is not None:
        if max_side <= 0:
            raise ValueError(f"The maximum size must be positive, got {max_side}.")
        scale = min(scale, max_side / max(width, height))
    return _round_to(width * scale, multiple), _round_to(height * scale, multiple)


def _target_size(width: int, height: int, size, multiple: int) -> tuple[int, int]:
    if size is None:
        return fit_size(width, height, multiple=multiple)
    if isinstance(size, (int, np.integer)):
        return fit_size(width, height, target_short_side=int(size), multiple=multiple)
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError) as e:
        raise ValueError(f"The size must be a number (short side) or (width, height), "
                         f"got {size!r}.") from e
    m = max(1, int(multiple or 1))
    return _round_to(w, m), _round_to(h, m)


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"Expected video frames shaped (frames, height, width, 3), "
                         f"got {frames.shape}.")
    if frames.dtype != np.uint8:
        # Floats are ambiguous ([0, 1]? [-1, 1]?); tensor_to_frames knows the range.
        raise ValueError(f"Expected uint8 video frames (0..255), got {frames.dtype}; "
                         "convert model outputs with tensor_to_frames first.")
    return frames


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize every frame to exactly (width, height); Lanczos, so shrinking does not alias."""
    frames = _check_frames(frames)
    if frames.shape[1:3] == (height, width):
        return frames
    out = [np.asarray(Image.fromarray(f).resize((width, height), Image.LANCZOS)) for f in frames]
    return np.stack(out)


# ----------------------------------------------------------------------------- reading


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns to display ``frame`` upright.

    Phones store portrait video as landscape plus a rotation tag; ffmpeg's command
    line applies it, PyAV does not, and without it uploads come out sideways.
    """
    return round((frame.rotation or 0) / 90) % 4


def probe_video(path: PathLike) -> VideoInfo:
    """Frame rate, frame count, displayed size and duration; decodes one frame at most."""
    container, stream = _open_video(path)
    try:
        fps, n, turns = _stream_fps(stream), 0, None
        for packet in container.demux(stream):
            n += packet.size > 0  # webm and gif headers often omit the count
            if turns is None:
                turns = next((_quarter_turns(f) for f in packet.decode()), None)
            if turns is not None and stream.frames:
                break
        n = stream.frames or n
        if n == 0 or turns is None:
            raise _unreadable(path, "the video has no frames.")
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = n / fps if fps else 0.0
        fps = fps or (n / duration if duration > 0 else DEFAULT_IMAGE_FPS)
        w, h = stream.codec_context.width, stream.codec_context.height
        w, h = (h, w) if turns % 2 else (w, h)
        return VideoInfo(fps=fps, num_frames=n, width=w, height=h, duration=duration)
    except av.FFmpegError as e:
        raise _unreadable(path, "the file is damaged.") from e
    finally:
        container.close()


def _decoded(container, stream, start: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """Yield (seconds since the video's start, frame), seeking near ``start`` first."""
    tb = stream.time_base
    t0 = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    if start > 0:
        try:  # lands on the keyframe before start; frames before start are skipped below
            container.seek(int((t0 + start) / tb), stream=stream, backward=True)
        except av.FFmpegError:
            pass  # unseekable (e.g. some gifs): decode from the top instead
    fps = _stream_fps(stream) or DEFAULT_IMAGE_FPS
    for i, frame in enumerate(container.decode(stream)):
        t = frame.time - t0 if frame.time is not None else i / fps
        yield t, frame


def _pick(source, start: float, end: float | None, fps: float | None, src_fps: float,
          tol: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """Frames in [start, end); with ``fps``, the source frame nearest each output time.

    ``tol`` is the container's timestamp rounding (webm keeps whole ms), so that a
    frame at 0.917 s of a 12 fps clip does not make the clip look 1.0003 s long.
    """
    if fps is None:
        for t, frame in source:
            if end is not None and t >= end - tol:
                return
            if t >= start - tol:
                yield t, frame
        return
    k, prev = 0, None
    for t, frame in source:
        # Output time T_k goes to prev when T_k is nearer prev than the current frame.
        while prev is not None and start + k / fps <= (prev[0] + t) / 2 + tol:
            if end is not None and start + k / fps >= end - tol:
                return
            yield prev
            k += 1
        prev = (t, frame)
    if prev is None:
        return
    stop = prev[0] + 1.0 / src_fps  # the last frame is shown for one source frame
    stop = min(stop, end) if end is not None else stop
    while start + k / fps < stop - tol:
        yield prev
        k += 1


def read_video(path: PathLike | Sequence[PathLike], *, fps: float | None = None,
               start: float = 0.0, end: float | None = None, max_frames: int | None = None,
               size=None, multiple: int = 8) -> tuple[np.ndarray, float]:
    """Decode a video (or an image folder / list of images) to (frames, fps).

    fps: resample in time by picking the source frame nearest each output timestamp
         (no blending, so every output frame is a real frame). None keeps the source rate.
    start, end: trim window in seconds. max_frames: cap on the output frame count.
    size: short side in pixels (aspect kept) or exact (width, height); None keeps the
          source size. Either way both sides are rounded to ``multiple`` (8 = SD latents;
          pass 1 to keep exact pixels).
    """
    if isinstance(path, (list, tuple)) or Path(path).is_dir():
        if start or end is not None:
            raise ValueError("Trimming by time needs a video file; for a folder of "
                             "images, remove the unwanted images instead.")
        frames = read_frames_folder(path, max_frames=max_frames, size=size, multiple=multiple)
        return frames, float(fps or DEFAULT_IMAGE_FPS)
    frames, src_fps = [], [None]
    for frame in _iter_video(path, fps, start, end, max_frames, size, multiple, src_fps):
        frames.append(frame)
    return np.stack(frames), float(fps or src_fps[0])


def read_video_chunks(path: PathLike | Sequence[PathLike], chunk: int, *, fps: float | None = None,
                      start: float = 0.0, end: float | None = None, max_frames: int | None = None,
                      size=None, multiple: int = 8) -> Iterator[np.ndarray]:
    """The frames read_video(path, **read) returns, as (<= chunk, H, W, 3) uint8 arrays decoded on demand: what
    walks a long video (object masks) holds at once is one chunk, not the whole video."""
    if chunk < 1:
        raise ValueError(f"A chunk holds at least one frame, got {chunk}.")
    if isinstance(path, (list, tuple)) or Path(path).is_dir():
        frames, _ = read_video(path, fps=fps, start=start, end=end, max_frames=max_frames, size=size,
                               multiple=multiple)  # a folder of images is read whole
        for i in range(0, len(frames), chunk):
            yield frames[i:i + chunk]
        return
    buffer: list[np.ndarray] = []
    for frame in _iter_video(path, fps, start, end, max_frames, size, multiple, [None]):
        buffer.append(frame)
        if len(buffer) == chunk:
            yield np.stack(buffer)
            buffer = []
    if buffer:
        yield np.stack(buffer)


def _iter_video(path, fps, start, end, max_frames, size, multiple, src_fps_out: list) -> Iterator[np.ndarray]:
    """read_video's frames one by one (validated trim window and size); src_fps_out[0] gets the source rate."""
    if fps is not None and fps <= 0:
        raise ValueError(f"The frame rate must be positive, got {fps}.")
    if start < 0:
        raise ValueError(f"The start time cannot be negative, got {start}s.")
    if end is not None and end <= start:
        raise ValueError(f"The trim window {start:g}s to {end:g}s is empty; "
                         "the end must come after the start.")
    if max_frames is not None and max_frames <= 0:
        raise ValueError(f"The frame limit must be at least 1, got {max_frames}.")

    container, stream = _open_video(path)
    count = 0
    try:
        src_fps = src_fps_out[0] = _stream_fps(stream) or DEFAULT_IMAGE_FPS
        cc = stream.codec_context
        w, h = _target_size(cc.width, cc.height, size, multiple)  # validates size early
        interp = "AREA" if w * h < cc.width * cc.height else "BICUBIC"
        tol = max(_EPS, float(stream.time_base or 0) / 2)  # max rounding of one timestamp
        picked = _pick(_decoded(container, stream, start), start, end, fps, src_fps, tol)
        for _, frame in picked:
            turns = _quarter_turns(frame)
            if turns % 2:  # stored sideways: size the upright picture, scale, then turn
                upright_w, upright_h = _target_size(cc.height, cc.width, size, multiple)
                w, h = upright_h, upright_w
            img = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation=interp)
            yield np.rot90(img, turns) if turns else img
            count += 1
            if max_frames is not None and count >= max_frames:
                break
    except av.FFmpegError as e:
        raise _unreadable(path, "the file is damaged and could not be decoded.") from e
    finally:
        container.close()
    if not count:
        if start > 0 or end is not None:
            raise _unreadable(path, f"no frames lie between {start:g}s and "
                                    f"{'the end' if end is None else f'{end:g}s'} "
                                    "(is the video shorter than that?).")
        raise _unreadable(path, "the video has no frames.")


def _natural_key(p: Path):
    # frame_2.png before frame_10.png, as a person numbering frames expects.
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def read_frames_folder(source: PathLike | Sequence[PathLike], *, max_frames: int | None = None,
                       size=None, multiple: int = 8) -> np.ndarray:
    """Load a folder of images (natural sort order) or a list of image paths as frames."""
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        label = "the image list"
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise ValueError(f"Could not read frames from '{folder.name}': it is not a folder.")
        paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                       key=_natural_key)
        label = f"the folder '{folder.name}'"
    if not paths:
        raise ValueError(f"Could not read frames: {label} has no images "
                         f"({', '.join(IMAGE_EXTENSIONS)}).")
    paths = paths[:max_frames] if max_frames else paths
    images = []
    for p in paths:
        if not p.is_file():
            raise ValueError(f"Could not read the image '{p.name}': the file does not exist.")
        try:
            with Image.open(p) as im:
                images.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError) as e:
            raise ValueError(f"Could not read '{p.name}' as an image.") from e
        if images[-1].shape != images[0].shape:
            h0, w0 = images[0].shape[:2]
            h1, w1 = images[-1].shape[:2]
            raise ValueError(f"All frames must have the same size: '{paths[0].name}' is "
                             f"{w0}x{h0} but '{p.name}' is {w1}x{h1}.")
    frames = np.stack(images)
    w, h = _target_size(frames.shape[2], frames.shape[1], size, multiple)
    return resize_frames(frames, w, h)


# ----------------------------------------------------------------------------- writing


def _atomic_target(path: PathLike, suffix: str) -> tuple[Path, str]:
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=suffix)
    os.close(fd)
    return dest, tmp


def _finish(tmp: str, dest: Path, ok: bool) -> None:
    if ok:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared/served
        os.replace(tmp, dest)
    elif os.path.exists(tmp):
        os.remove(tmp)


def write_mp4(frames: np.ndarray, path: PathLike, fps: float = 8, crf: int = 18) -> Path:
    """Write H.264/yuv420p mp4 that browsers play; odd sizes lose their last row/column.

    yuv420p stores colour at half resolution, so x264 refuses odd sizes; cropping one
    pixel is invisible, unlike padding with a coloured edge. ``faststart`` moves the
    index to the front so the UI can start playing before the file has fully loaded.
    """
    frames = _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"The frame rate must be positive, got {fps}.")
    if not 0 <= crf <= 51:
        raise ValueError(f"The video quality (crf) must be between 0 and 51, got {crf}.")
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    if h == 0 or w == 0:
        raise ValueError(f"A video must be at least 2x2 pixels, got "
                         f"{frames.shape[2]}x{frames.shape[1]}.")
    frames = frames[:, :h, :w]
    dest, tmp = _atomic_target(path, ".mp4")
    ok = False
    try:
        with av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(crf)}
            # PyAV converts RGB to YUV with the BT.601 matrix; saying so in the file stops
            # browsers from guessing BT.709 for HD sizes and shifting the colours.
            cc = stream.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = _SMPTE170M
            cc.color_range = _LIMITED_RANGE
            for f in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f),
                                                                 format="rgb24")))
            out.mux(stream.encode())
        ok = True
    finally:
        _finish(tmp, dest, ok)
    return dest


def has_audio(path: PathLike) -> bool:
    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except (av.FFmpegError, OSError):
        return False


def mux_audio(video: PathLike, source: PathLike, start: float = 0.0, duration: float | None = None) -> bool:
    """Give the written `video` the sound of `source` from `start` for `duration` seconds (the edited range):
    the video packets are copied unchanged, the audio is re-encoded to AAC and cut to fit. Returns False (and
    leaves the file alone) when the source has no audio. An edit keeps the sound people uploaded."""
    if not has_audio(source):
        return False
    dest, tmp = _atomic_target(video, ".mp4")
    ok = False
    try:
        with av.open(str(dest)) as vin, av.open(str(source)) as ain, \
                av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            vs = vin.streams.video[0]
            length = duration if duration is not None else float(vs.duration * vs.time_base) if vs.duration else None
            ovs = out.add_stream_from_template(vs)
            src = ain.streams.audio[0]
            rate = src.codec_context.sample_rate or 44100
            oas = out.add_stream("aac", rate=rate)
            oas.layout = "stereo" if (src.codec_context.layout.nb_channels or 1) > 1 else "mono"
            for packet in vin.demux(vs):
                if packet.dts is None:
                    continue
                packet.stream = ovs
                out.mux(packet)
            resampler = av.AudioResampler(format="fltp", layout=oas.layout.name, rate=rate)
            end = None if length is None else start + length
            written = 0
            if start > 0:
                ain.seek(int(start / src.time_base), stream=src, backward=True, any_frame=False)
            for frame in ain.decode(src):
                if frame.pts is None:
                    continue
                t0 = float(frame.pts * src.time_base)
                t1 = t0 + frame.samples / frame.sample_rate
                if t1 <= start:
                    continue
                if end is not None and t0 >= end:
                    break
                for f in resampler.resample(frame):
                    samples = f.to_ndarray()
                    a, b = 0, f.samples  # cut the edges of the first/last frame to the exact range
                    if t0 < start:
                        a = min(b, int(round((start - t0) * rate)))
                    if end is not None and t0 + f.samples / rate > end:
                        b = max(a, int(round((end - t0) * rate)))
                    if b <= a:
                        continue
                    cut = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, a:b]), format="fltp",
                                                     layout=oas.layout.name)
                    cut.sample_rate, cut.pts = rate, written
                    written += b - a
                    out.mux(oas.encode(cut))
            out.mux(oas.encode())
        ok = True
    finally:
        _finish(tmp, dest, ok)
    return True


def write_gif(frames: np.ndarray, path: PathLike, fps: float = 8) -> Path:
    """Write a looping GIF for small previews (Pillow picks a palette per frame).

    GIF stores delays in 1/100 s, so rates above ~50 fps are not honoured by viewers;
    Pillow also merges identical consecutive frames into one longer frame.
    """
    frames = _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"The frame rate must be positive, got {fps}.")
    images = [Image.fromarray(f) for f in frames]
    dest, tmp = _atomic_target(path, ".gif")
    ok = False
    try:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000 / fps)), loop=0)
        ok = True
    finally:
        _finish(tmp, dest, ok)
    return dest


def save_frames_png(frames: np.ndarray, folder: PathLike, prefix: str = "frame") -> list[Path]:
    """Save frames as ``{prefix}_00000.png`` ...; zero padding keeps them sorted anywhere."""
    frames = _check_frames(frames)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(len(frames) - 1)))
    paths = []
    for i, f in enumerate(frames):
        p = folder / f"{prefix}_{i:0{digits}d}.png"
        Image.fromarray(f).save(p)
        paths.append(p)
    return paths


# ----------------------------------------------------------------------------- tensors


def frames_to_tensor(frames: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> (F, 3, H, W) in [-1, 1], the range SD's VAE encodes."""
    frames = _check_frames(frames)
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    return (t / 127.5 - 1.0).to(dtype)


def tensor_to_frames(t: torch.Tensor) -> np.ndarray:
    """(F, 3, H, W) or (1, 3, F, H, W) in [-1, 1] -> uint8 (F, H, W, 3); out-of-range clamps."""
    if t.ndim == 5:
        if t.shape[0] != 1:
            raise ValueError(f"Expected one video, got a batch of {t.shape[0]}.")
        t = t[0].permute(1, 0, 2, 3)  # (3, F, H, W) -> (F, 3, H, W)
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"Expected a video tensor shaped (F, 3, H, W) or (1, 3, F, H, W), "
                         f"got {tuple(t.shape)}.")
    t = ((t.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return t.permute(0, 2, 3, 1).cpu().numpy()


def video_hash(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """sha256 of the file bytes, read in chunks so long videos do not fill memory."""
    p = _check_file(path)
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()
