"""Fusing inside AnimateDiff's motion modules, on a tiny random UNetMotionModel."""
import pytest
import torch
from diffusers import UNetMotionModel

from genl.codenoise import make_windows, shifted_windows, window_weights
from genl.motion_windows import WindowedMotionModule, unwindow_motion_modules, window_motion_modules
from tiny import tiny_motion_adapter, tiny_unet


@pytest.fixture(scope="module")
def unet():
    return UNetMotionModel.from_unet2d(tiny_unet(), tiny_motion_adapter()).eval()


def inputs(frames, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 4, frames, 4, 4, generator=gen),
            torch.randn(frames, 5, 32, generator=gen))  # per-frame text states


@torch.no_grad()
def test_isolated_clips_inside_motion_modules_equal_one_call_per_clip(unet):
    m, n = 4, 12
    x, states = inputs(n)
    expected = torch.cat([unet(x[:, :, a:b], 10, encoder_hidden_states=states[a:b]).sample
                          for a, b in make_windows(n, m, m)], dim=2)
    plan = window_motion_modules(unet)
    try:
        windows = make_windows(n, m, m)
        plan.set(windows, [window_weights("pyramid", m)] * len(windows))
        got = unet(x, 10, encoder_hidden_states=states).sample
    finally:
        unwindow_motion_modules(unet)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert plan.calls > 0


@torch.no_grad()
def test_overlapping_windows_fuse_and_unwrapping_restores_the_model(unet):
    m, n = 4, 10
    x, states = inputs(n, seed=1)
    clip = unet(x[:, :, :m], 10, encoder_hidden_states=states[:m]).sample
    plan = window_motion_modules(unet, windows_per_call=2)
    assert any(isinstance(mod, WindowedMotionModule) for mod in unet.modules())
    try:
        with pytest.raises(ValueError, match="not set"):
            unet(x, 10, encoder_hidden_states=states)
        outs = []
        for step in range(2):
            windows = shifted_windows(n, m, 2, step)
            plan.set(windows, [window_weights("pyramid", m)] * len(windows))
            outs.append(unet(x, 10, encoder_hidden_states=states).sample)
        assert outs[0].shape == x.shape and bool(torch.isfinite(outs[0]).all())
        assert not torch.allclose(outs[0], outs[1])  # the windows moved, so the fusion changed
        plan.set([(0, m)], [torch.ones(m)])  # one clip that is the whole input: the plain module
        torch.testing.assert_close(unet(x[:, :, :m], 10, encoder_hidden_states=states[:m]).sample, clip)
    finally:
        unwindow_motion_modules(unet)
    assert not any(isinstance(mod, WindowedMotionModule) for mod in unet.modules())
    torch.testing.assert_close(unet(x[:, :, :m], 10, encoder_hidden_states=states[:m]).sample, clip)


def test_image_unet_is_refused():
    with pytest.raises(ValueError, match="AnimateDiff"):
        window_motion_modules(tiny_unet())


# ---- CoDenoiseSettings.fusion="motion" through LongAnimateDiffPipeline -------------------------------------
def ad_pipeline(unet):
    from genl.pipelines import LongAnimateDiffPipeline
    from tiny import tiny_components

    comps = tiny_components()
    comps["unet"] = unet
    return LongAnimateDiffPipeline(**comps)


@torch.no_grad()
def test_pipeline_motion_fusion_matches_output_fusion_for_isolated_clips(unet):
    """With S=M clips and one prompt, fusing inside the motion modules is the same computation as fusing
    model outputs (spatial layers are per frame), so the videos agree; the model is unwrapped afterwards."""
    from genl.settings import CoDenoiseSettings
    from genl.timeline import Timeline

    pipe = ad_pipeline(unet)
    tl = Timeline.from_rows([(0, 11, "a red circle")])
    kw = dict(num_frames=12, height=16, width=16, num_inference_steps=2, guidance_scale=3.0, seed=3)
    out = pipe(tl, codenoise=CoDenoiseSettings(clip_length=4, stride=4, fusion="output"), **kw)
    mot = pipe(tl, codenoise=CoDenoiseSettings(clip_length=4, stride=4, fusion="motion"), **kw)
    torch.testing.assert_close(mot.latents, out.latents, rtol=1e-3, atol=1e-4)
    assert mot.notices == []
    assert not any(isinstance(mod, WindowedMotionModule) for mod in unet.modules())
    shifted = pipe(tl, codenoise=CoDenoiseSettings(clip_length=4, stride=4, schedule="shifted", fusion="motion"),
                   **kw)
    assert shifted.frames.shape == (12, 16, 16, 3)
    assert not torch.allclose(shifted.latents, mot.latents)  # the moved windows really reach the motion modules


def test_motion_fusion_needs_an_animatediff_model():
    from genl.pipelines import LongTuningFreePipeline
    from genl.settings import CoDenoiseSettings
    from genl.timeline import Timeline
    from tiny import tiny_components

    with pytest.raises(ValueError, match="AnimateDiff models only"):
        LongTuningFreePipeline(**tiny_components())(Timeline.from_rows([(0, 7, "a red circle")]), num_frames=8,
                                                    height=32, width=32, num_inference_steps=1,
                                                    codenoise=CoDenoiseSettings(clip_length=4, stride=2,
                                                                                fusion="motion"))
    with pytest.raises(ValueError, match="Unknown fusion"):
        CoDenoiseSettings(fusion="latents").validate(16)


def test_motion_fusion_falls_back_when_the_whole_video_would_not_fit(unet, monkeypatch):
    from genl.pipelines import text2video
    from genl.settings import CoDenoiseSettings
    from genl.timeline import Timeline

    monkeypatch.setattr(text2video, "frames_per_call", lambda *a, **k: 8)  # a GPU with room for 8 frames
    pipe = ad_pipeline(unet)
    out = pipe(Timeline.from_rows([(0, 11, "a red circle")]), num_frames=12, height=32, width=32,
               num_inference_steps=1, guidance_scale=3.0,
               codenoise=CoDenoiseSettings(clip_length=4, stride=4, fusion="motion"))
    assert len(out.notices) == 1 and "instead of inside the motion modules" in out.notices[0]
