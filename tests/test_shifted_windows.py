"""Windows that move between denoising steps (`shifted_windows`), without a model."""
import pytest
import torch
from diffusers import DDIMScheduler
from framewise import SD_BETAS, frame_wise, sample_against_whole_video

from genl.codenoise import (
    SHIFT_OFFSETS,
    co_denoise,
    make_windows,
    offset_windows,
    shifted_windows,
    window_weights,
)

CASES = [(16, 16, 16), (17, 16, 16), (40, 16, 16), (128, 16, 16), (129, 16, 16), (1000, 16, 16),
         (128, 16, 4), (128, 16, 8), (100, 16, 5), (50, 8, 3), (7, 1, 1), (9, 3, 3), (24, 24, 12)]


@pytest.mark.parametrize("n,m,s", CASES)
def test_full_length_clamped_and_every_frame_covered(n, m, s):
    for step in range(40):
        windows = shifted_windows(n, m, s, step)
        assert windows == sorted(set(windows)), "windows are distinct and in order"
        assert windows[0][0] == 0 and windows[-1][1] == n
        covered = torch.zeros(n, dtype=torch.long)
        for a, b in windows:
            assert b - a == m and 0 <= a and b <= n
            covered[a:b] += 1
        assert bool((covered > 0).all())


@pytest.mark.parametrize("n,m,s", CASES)
def test_count_bound(n, m, s):
    isolated = len(make_windows(n, m, m))
    paper = len(make_windows(n, m, s))
    for step in range(40):
        count = len(shifted_windows(n, m, s, step))
        assert count <= paper + 1
        if s == m:
            assert count <= isolated + 1


def test_step_zero_is_the_paper_grid_and_steps_are_deterministic():
    assert shifted_windows(128, 16, 4, 0) == make_windows(128, 16, 4)
    assert shifted_windows(128, 16, 16, 0) == make_windows(128, 16, 16)
    assert [shifted_windows(128, 16, 16, k) for k in range(50)] == [shifted_windows(128, 16, 16, k)
                                                                   for k in range(50)]


def test_seams_move_so_no_inner_frame_is_an_edge_on_most_steps():
    n, m, steps = 128, 16, 50
    edge_steps = torch.zeros(n)
    grids = set()
    for step in range(steps):
        windows = shifted_windows(n, m, m, step)
        grids.add(tuple(windows))
        for a, b in windows:
            edge_steps[a] += 1
            edge_steps[b - 1] += 1
    assert len(grids) >= 10  # the grid really moves
    inner = edge_steps[m:n - m]
    assert float(inner.max()) <= 0.2 * steps  # an isolated-clip grid would make frames 16, 31, ... edges 100 %


def test_offset_windows_and_offset_tables():
    assert offset_windows(40, 16, 16, 8) == [(0, 16), (8, 24), (24, 40)]
    assert offset_windows(40, 16, 16, 0) == make_windows(40, 16, 16)
    assert offset_windows(40, 16, 16, 24) == offset_windows(40, 16, 16, 8)  # offsets wrap at S
    for name, offset in SHIFT_OFFSETS.items():
        values = [offset(k, 16, 16) for k in range(64)]
        assert values[0] == 0 and all(0 <= v < 16 for v in values), name
        assert len(set(values)) > 1, name


def test_errors_are_plain_value_errors():
    with pytest.raises(ValueError, match="longer than the video"):
        shifted_windows(8, 16, 16, 3)
    with pytest.raises(ValueError, match="Stride"):
        shifted_windows(64, 16, 17, 3)


@pytest.mark.parametrize("n,m,s", [(128, 16, 16), (100, 16, 4), (37, 8, 8)])
@pytest.mark.parametrize("weights", ["flat", "pyramid", "gaussian"])
def test_co_denoise_with_shifted_windows_equals_whole_video(n, m, s, weights):
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, n, 4, 4, generator=gen, dtype=torch.float64)
    sched_a = DDIMScheduler(**SD_BETAS)
    sched_b = DDIMScheduler(**SD_BETAS)
    sched_a.set_timesteps(8)
    sched_b.set_timesteps(8)
    x_fused, x_whole = latents.clone(), latents.clone()
    for step, t in enumerate(sched_a.timesteps):
        windows = shifted_windows(n, m, s, step)
        w = [window_weights(weights, m).double()] * len(windows)
        out = co_denoise(x_fused, t, windows, w, lambda z, t, i: frame_wise(z, t))
        batched = co_denoise(x_fused, t, windows, w, denoise_batch=lambda z, t, idx: frame_wise(z, t),
                             windows_per_call=3)
        torch.testing.assert_close(out, batched)
        x_fused = sched_a.step(out, t, x_fused).prev_sample
        x_whole = sched_b.step(frame_wise(x_whole, t), t, x_whole).prev_sample
    torch.testing.assert_close(x_fused, x_whole, rtol=1e-10, atol=1e-10)


# ---- through the plan and the sampler ---------------------------------------------------------------------
def test_plan_schedule_shifted_gives_shifted_windows_per_step():
    from genl.plan import SCHEDULES, CoDenoisePlan
    from genl.settings import CoDenoiseSettings

    assert "shifted" in SCHEDULES
    plan = CoDenoisePlan.from_settings(CoDenoiseSettings(stride=16, schedule="shifted", weights="pyramid"), 128)
    for step in range(12):
        assert plan.windows_at(step) == shifted_windows(128, 16, 16, step)
        assert len(plan.weights_at(step)) == len(plan.windows_at(step))
    assert plan.windows_at(1) != plan.windows_at(0)


def test_loop_with_shifted_is_a_plain_error_in_settings_and_plan():
    from genl.plan import CoDenoisePlan
    from genl.settings import CoDenoiseSettings

    settings = CoDenoiseSettings(stride=16, schedule="shifted", loop=True)
    with pytest.raises(ValueError, match="cannot make a looping video"):
        settings.validate(64)
    with pytest.raises(ValueError, match="cannot make a looping video"):
        CoDenoisePlan.from_settings(settings, 64)
    with pytest.raises(ValueError, match="Unknown window schedule"):
        CoDenoiseSettings(schedule="wobbly").validate(64)


def test_co_denoise_sample_with_the_shifted_plan_equals_whole_video():
    """The sampler asks the plan for each step's windows: frame-wise denoising must match the whole video,
    and every step must really see that step's shifted windows."""
    from genl.plan import CoDenoisePlan

    n, m = 100, 16
    plan = CoDenoisePlan(num_frames=n, clip_length=m, stride=m, weights="pyramid", schedule="shifted",
                         windows_per_call=4)
    latents = torch.randn(1, 4, n, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got, want, seen, timesteps = sample_against_whole_video(plan, latents, 6)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    for step, t in enumerate(timesteps):
        assert seen[int(t)] == shifted_windows(n, m, m, step)


def test_estimate_uses_the_measured_rate_of_the_chosen_schedule(monkeypatch):
    """On a GPU the UI's estimate divides each schedule's frame evaluations by its rate in speed.json: the
    compiled row where the worker compiles (the default) and there is one, else the eager row."""
    import json

    from genl import api
    from genl.settings import CoDenoiseSettings, GenerateSettings

    rows = json.loads(api.SPEED_RESULTS.read_text())["results"]
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    cases = [("", "fixed", 4, "ad_paper_eager"), ("", "shifted", 16, "ad_shifted_compiled"),
             ("0", "shifted", 16, "ad_shifted_eager")]
    for env, schedule, stride, row in cases:
        monkeypatch.setenv("GENL_COMPILE", env)
        s = GenerateSettings(prompt="a red circle", num_frames=128, steps=50, model="some/model",
                             codenoise=CoDenoiseSettings(stride=stride, schedule=schedule, weights="pyramid"))
        est = api.estimate(s)
        clips = sum(len(shifted_windows(128, 16, stride, k)) if schedule == "shifted"
                    else len(make_windows(128, 16, stride)) for k in range(50))
        assert est["frame_evals"] == clips * 16 * 2
        assert est["seconds"] == pytest.approx(clips * 32 / rows[row]["unet_frames_per_s"])
