"""The demo model's motion stage (windows of long videos, the pipeline's text mix) and the motion benchmark's
direction rule (issue 12)."""
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from genl.demo.train_motion import WINDOW, MotionData, sample_windows, window_condition
from genl.demo.world import long_video_timeline, parse_caption, random_long_video, render_long_video
from genl.demo.world_parse import parse_frame
from genl.timeline import Timeline, mix_embeddings
from tiny import cached_tiny_models, tiny_text_encoder, tiny_tokenizer, tiny_unet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from quality_motion import motion_followed  # noqa: E402


def _data(lengths, segments_per_video):
    """MotionData with dummy latents whose frame value is its index, and two captions per video."""
    tok = tiny_tokenizer()
    total = sum(lengths)
    seg, ids, captions = [], [], ["a red circle moving left over grass", "a blue square moving up over sky"]
    for n, k in zip(lengths, segments_per_video):
        cut = n // 2 if k == 2 else n
        base = len(ids)
        seg += [base] * cut + [base + 1] * (n - cut)
        ids += tok(captions[:k], padding="max_length", max_length=16).input_ids
    lengths_t = torch.tensor(lengths)
    frames = torch.arange(total, dtype=torch.float32).view(-1, 1, 1, 1).expand(total, 4, 2, 2)
    return tok, MotionData(frames, torch.zeros_like(frames), torch.tensor(seg), torch.cumsum(lengths_t, 0) - lengths_t,
                           lengths_t, torch.tensor(ids), 1.0)


def test_windows_stay_inside_one_video():
    _, data = _data([16, 40, 96], [1, 1, 2])
    torch.manual_seed(0)
    frames = sample_windows(data, 500)
    ends = data.offsets + data.lengths
    video = torch.bucketize(frames[:, 0].contiguous(), ends, right=True)
    assert frames.shape == (500, WINDOW)
    assert (frames[:, -1] < ends[video]).all() and (frames[:, 0] >= data.offsets[video]).all()
    assert (frames.diff(dim=1) == 1).all()
    assert len(set(video.tolist())) == 3  # every video is drawn


def test_window_condition_is_the_pipelines_mix():
    tok, data = _data([64], [2])
    te = tiny_text_encoder(len(tok))
    empty = torch.tensor(tok([""], padding="max_length", max_length=16).input_ids)
    frames = torch.arange(24, 24 + WINDOW)[None]  # 8 frames of each segment
    with torch.no_grad():
        got = window_condition(te, data, frames, empty, dropout=0.0)
        tl = Timeline.from_rows([(0, 31, "a red circle moving left over grass"),
                                 (32, 63, "a blue square moving up over sky")])
        pos = te(data.ids)[0]
        want = mix_embeddings(pos, tl.clip_prompt_mix([(24, 40)], 64), "linear")
        dropped = window_condition(te, data, frames, empty, dropout=1.0)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(dropped, te(empty)[0], atol=1e-6)


def test_motion_rule_reads_rendered_motion_and_rejects_reversed():
    spec = random_long_video(1003)
    frames = render_long_video(spec, 64)
    parsed = [parse_frame(f) for f in frames]
    for a, b, text in long_video_timeline(spec):
        motion = parse_caption(text)["motion"]
        assert motion_followed(parsed[a:b + 1], motion), text
        if motion in ("left", "right", "up", "down", "grow"):
            assert not motion_followed(parsed[a:b + 1][::-1], motion), text


def test_motion_stage_alone_keeps_2d_weights(tmp_path):
    from genl.demo.train import TrainConfig, train
    from safetensors.torch import load_file

    init = tmp_path / "init"
    shutil.copytree(cached_tiny_models()["animatediff"], init)
    tiny_unet().save_config(init / "unet_2d")
    out = tmp_path / "out"
    cfg = TrainConfig(stage="motion", init=str(init), out=str(out), minutes_motion=0.01, motion_videos=2,
                      motion_mix=(1.0, 1.0, 0.0), batch_motion=1, warmup_motion=1, log_every=1)
    log = train(cfg)
    before, after = (load_file(next((d / "unet").glob("*.safetensors"))) for d in (init, out))
    motion_keys = [k for k in before if "motion_modules" in k]
    assert log["stages"]["motion"]["steps"] >= 1 and log["motion_warm_start"]
    # the bundle is saved in fp16: compare against the initial weights rounded the same way
    assert all(torch.equal(before[k].half(), after[k]) for k in before if "motion_modules" not in k)
    assert any(not torch.equal(before[k].half(), after[k]) for k in motion_keys)
    assert (out / "unet_2d" / "config.json").exists() and (out / "training_log_motion.json").exists()


def test_config_text():
    from quality_motion import parse_config

    assert parse_config("ddim:50:4") == ("ddim", 50, 4, {})
    assert parse_config("dpm++:15:8:trailing") == ("dpm++", 15, 8, {"timestep_spacing": "trailing"})
    for bad in ("ddim:50", "ddim:x:4", "ddim:50:4:sideways"):
        try:
            parse_config(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
