"""The "partitioned" schedule: disjoint clips whose cuts move every step, joined into one image-UNet call."""
import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from genl.attention import CrossFrameAttnProcessor, layout_key_frames
from genl.codenoise import co_denoise, make_windows, model_calls, partition_windows
from genl.plan import CoDenoisePlan
from genl.settings import CoDenoiseSettings
from genl.timeline import Timeline

CASES = [(16, 16), (17, 16), (40, 16), (128, 16), (129, 16), (100, 8), (7, 1), (9, 3)]


@pytest.mark.parametrize("n,m", CASES)
def test_every_frame_in_exactly_one_clip_and_the_cuts_move(n, m):
    cuts = set()
    for step in range(30):
        windows = partition_windows(n, m, step)
        assert windows[0][0] == 0 and windows[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(windows, windows[1:])), "disjoint and gapless"
        assert all(1 <= e - s <= m for s, e in windows)
        assert len(windows) <= -(-n // m) + 1
        cuts |= {s for s, _ in windows[1:]}
    assert partition_windows(n, m, 0) == [(s, min(s + m, n)) for s in range(0, n, m)]  # step 0: the plain grid
    if m > 1 and n > m:
        assert len(cuts) > n // m, "seams do not stay in one place"


def test_plan_rejects_overlap_and_loops():
    with pytest.raises(ValueError, match="stride to the clip length"):
        CoDenoisePlan(64, 16, 4, schedule="partitioned")
    with pytest.raises(ValueError, match="looping"):
        CoDenoisePlan(64, 16, 16, schedule="partitioned", loop=True)
    with pytest.raises(ValueError, match="stride to the clip length"):
        CoDenoiseSettings(clip_length=16, stride=8, schedule="partitioned").validate(64)
    plan = CoDenoisePlan(128, 16, 16, schedule="partitioned")
    assert sum(e - s for s, e in plan.windows_at(3)) == 128


def test_calls_join_mixed_lengths_only_for_a_denoiser_that_says_so():
    lengths = [3, 16, 16, 13]

    def plain(x, t, idx):
        return x

    def joining(x, t, idx):
        return x

    joining.joins_frames = True
    assert model_calls(range(4), lengths, 8, joining) == [[0, 1, 2, 3]]
    assert model_calls(range(4), lengths, 2, joining) == [[0, 1], [2, 3]]  # at most 2 x 16 frames a call
    assert sorted(map(sorted, model_calls(range(4), lengths, 8, plain))) == [[0], [1, 2], [3]]  # by length
    assert model_calls(range(3), [16, 16, 16], 2, joining) == [[0, 1], [2]]  # equal lengths: as always


@pytest.mark.parametrize("joins", [True, False])
def test_co_denoise_of_disjoint_clips_is_each_clip_alone(joins):
    """Exact fusion: with disjoint clips each frame gets its own clip's output, whether the clips came joined
    in one call or by length."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 40, 3, 3)
    windows = partition_windows(40, 16, 2)
    weights = [torch.rand(e - s) + 0.1 for s, e in windows]
    calls = []

    def denoise(stacked, t, idx):  # depends on the clip: its length and its own frames only
        calls.append(tuple(stacked.shape))
        outs, start = [], 0
        for i in idx:
            n = windows[i][1] - windows[i][0]
            part = stacked[:, :, start:start + n] if joins else stacked[len(outs):len(outs) + 1]
            outs.append(part * n + part.mean(dim=2, keepdim=True))
            start += n
        return torch.cat(outs, dim=2 if joins else 0)

    if joins:
        denoise.joins_frames = True
    fused = co_denoise(x, 0, windows, weights, denoise_batch=denoise, windows_per_call=8)
    want = torch.cat([x[:, :, s:e] * (e - s) + x[:, :, s:e].mean(dim=2, keepdim=True) for s, e in windows], dim=2)
    torch.testing.assert_close(fused, want)
    assert len(calls) == (1 if joins else len({e - s for s, e in windows}))


@pytest.mark.parametrize("mode", ["bidirectional", "sparse_causal"])
def test_layout_attention_equals_each_clip_alone(mode):
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    lengths = [3, 7, 5]
    x = torch.randn(2 * sum(lengths), 4, 16)  # two CFG halves of the joined clips
    proc = CrossFrameAttnProcessor(mode, 7)
    proc.frame_keys = layout_key_frames(mode, lengths, copies=2)
    joined = proc(attn, x)
    start, alone = 0, []
    for half in range(2):
        for n in lengths:
            alone.append(CrossFrameAttnProcessor(mode, n)(attn, x[start:start + n]))
            start += n
    torch.testing.assert_close(joined, torch.cat(alone))
    proc.frame_keys = layout_key_frames(mode, [7, 7])  # equal clips: the same as the default path
    torch.testing.assert_close(proc(attn, x[:14]), CrossFrameAttnProcessor(mode, 7)(attn, x[:14]))
    with pytest.raises(ValueError, match="layout covers"):
        proc(attn, x)


def test_tuning_free_pipeline_joined_call_equals_clip_by_clip(tiny_models, model_manager):
    """The image UNet denoises the step's disjoint clips in one call with the layout given to its cross-frame
    attention: the same video as one clip per call. A video model refuses the schedule in a sentence."""
    pipe = model_manager.get("tuning_free", tiny_models["sd"])
    tl = Timeline.parse("0-11: a red circle moving right | 12-23: a blue square over sand")
    kw = dict(num_frames=24, height=32, width=32, num_inference_steps=3, seed=4)
    runs = [pipe(tl, codenoise=CoDenoiseSettings(clip_length=8, stride=8, schedule="partitioned",
                                                  windows_per_call=k), **kw).latents for k in (1, 8)]
    torch.testing.assert_close(runs[0], runs[1], atol=2e-5, rtol=1e-4)
    shifted = pipe(tl, codenoise=CoDenoiseSettings(clip_length=8, stride=8, schedule="shifted"), **kw).latents
    assert not np.allclose(shifted.numpy(), runs[1].numpy())
    video = model_manager.get("animatediff", tiny_models["animatediff"])
    with pytest.raises(ValueError, match="motion modules"):
        video(tl, codenoise=CoDenoiseSettings(clip_length=8, stride=8, schedule="partitioned"), **kw)
    assert make_windows(24, 8, 8) == partition_windows(24, 8, 0)


def test_settings_refuse_disjoint_clips_for_a_video_model_before_any_work():
    from genl.settings import GenerateSettings

    cn = CoDenoiseSettings(clip_length=16, stride=16, schedule="partitioned")
    GenerateSettings(prompt="a red circle", num_frames=64, pipeline="tuning_free", codenoise=cn).validate()
    with pytest.raises(ValueError, match="image models"):
        GenerateSettings(prompt="a red circle", num_frames=64, pipeline="animatediff", codenoise=cn).validate()


def test_cli_takes_the_studio_fast_settings_and_refuses_disjoint_clips_for_video_models():
    from genl.cli import build_parser, settings_from_args

    parse = build_parser().parse_args
    fast = settings_from_args(parse(["generate", "--prompt", "a red circle", "--schedule", "settled", "-S", "16",
                                     "--fusion", "motion"]))
    assert (fast.codenoise.schedule, fast.codenoise.stride, fast.codenoise.fusion) == ("settled", 16, "motion")
    fast.validate()
    assert settings_from_args(parse(["generate", "--prompt", "a"])).codenoise.fusion == "output"  # the default
    disjoint = settings_from_args(parse(["generate", "--prompt", "a red circle", "--schedule", "partitioned",
                                         "-S", "16"]))
    with pytest.raises(ValueError, match="image models"):
        disjoint.validate()


def test_an_edit_with_a_tuning_refuses_disjoint_clips_before_any_work():
    from genl.settings import EditSettings

    cn = CoDenoiseSettings(clip_length=16, stride=16, schedule="partitioned")
    EditSettings(video="in.mp4", source_prompt="a red circle", prompt="a blue circle", codenoise=cn).validate()
    with pytest.raises(ValueError, match="temporal layers"):
        EditSettings(video="in.mp4", prompt="a blue circle", tuned="my-tuning", codenoise=cn).validate()
