"""The "settled" window schedule: overlapping fixed clips for the first steps of a run, moving clips after.
Pure plan and sampler checks, without a model."""
import pytest
import torch
from diffusers import DDIMScheduler
from framewise import SD_BETAS, frame_wise, sample_against_whole_video

from genl.codenoise import make_windows, shifted_windows
from genl.plan import SCHEDULES, CoDenoisePlan, settle_steps, settled_schedule_for
from genl.settings import CoDenoiseSettings


@pytest.mark.parametrize("steps,want", [(50, 5), (25, 3), (15, 2), (10, 1), (3, 1), (1, 1), (0, 1)])
def test_settle_steps_is_a_tenth_of_the_run_rounded_up_and_at_least_one(steps, want):
    assert settle_steps(steps) == want


@pytest.mark.parametrize("n,m,s", [(128, 16, 16), (100, 16, 16), (64, 16, 8), (37, 8, 8), (16, 16, 16)])
def test_overlapping_fixed_clips_first_then_the_shifted_grid(n, m, s):
    plan = CoDenoisePlan.from_settings(CoDenoiseSettings(clip_length=m, stride=s, schedule="settled",
                                                         weights="pyramid"), n, num_steps=50)
    for step in range(50):
        want = make_windows(n, m, min(s, m // 2)) if step < 5 else shifted_windows(n, m, s, step)
        assert plan.windows_at(step) == want, step
        covered = torch.zeros(n, dtype=torch.bool)
        for a, b in plan.windows_at(step):
            assert b - a == m
            covered[a:b] = True
        assert covered.all()


def test_the_cost_over_a_run_is_close_to_moving_clips():
    """At S=M, 50 steps of 128 frames: 5 steps of 15 clips and 45 of shifted clips, within 7 % of shifted."""
    settled = sum(len(SCHEDULES["settled"](128, 16, 16, k, num_steps=50)) for k in range(50))
    shifted = sum(len(shifted_windows(128, 16, 16, k)) for k in range(50))
    paper = 50 * len(make_windows(128, 16, 4))
    assert settled == 5 * 15 + sum(len(shifted_windows(128, 16, 16, k)) for k in range(5, 50))
    assert settled < 1.07 * shifted < paper / 2.5


def test_other_shares_and_strides():
    sched = settled_schedule_for(0.2, 4)
    assert [sched(64, 16, 16, k, num_steps=20) for k in range(4)] == [make_windows(64, 16, 4)] * 4
    assert sched(64, 16, 16, 4, num_steps=20) == shifted_windows(64, 16, 16, 4)


def test_the_sampler_tells_the_plan_how_long_the_run_is_and_fusion_stays_exact():
    """The plan is built without a step count; co_denoise_sample gives it len(timesteps), so a 20-step run
    settles for 2 steps. Frame-wise denoising through every step's windows equals the whole video."""
    n, m = 100, 16
    plan = CoDenoisePlan(num_frames=n, clip_length=m, stride=m, weights="pyramid", schedule="settled",
                         windows_per_call=3)
    latents = torch.randn(1, 4, n, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got, want, seen, timesteps = sample_against_whole_video(plan, latents, 20)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    for step, t in enumerate(timesteps):
        expect = make_windows(n, m, m // 2) if step < 2 else shifted_windows(n, m, m, step)
        assert seen[int(t)] == expect, step
    assert plan.num_steps == 0  # the caller's plan is left as it was


def test_inversion_uses_the_clips_sampling_uses_at_the_same_timestep():
    """DDIM inversion climbs the sampling timesteps in reverse: at each timestep it must denoise with the
    windows the sampler will use there, so the overlapping clips sit at the noisy end in both."""
    from genl.inversion import ddim_invert

    n, m, steps = 64, 16, 10
    sched = DDIMScheduler(**SD_BETAS)
    sched.set_timesteps(steps)
    timesteps = [int(t) for t in sched.timesteps]
    plan = CoDenoisePlan(num_frames=n, clip_length=m, stride=m, schedule="settled")
    seen = {}

    def denoise(x, t, windows):
        seen.setdefault(int(t), []).extend(windows)
        return frame_wise(x, t)

    ddim_invert(torch.randn(1, 4, n, 2, 2, dtype=torch.float64), timesteps, sched.alphas_cumprod, plan, denoise)
    for step, t in enumerate(timesteps):
        expect = make_windows(n, m, m // 2) if step < 1 else shifted_windows(n, m, m, step)
        assert seen[t] == expect, (step, t)


def test_loop_is_a_plain_error():
    with pytest.raises(ValueError, match="cannot make a looping video"):
        CoDenoiseSettings(stride=16, schedule="settled", loop=True).validate(64)


def test_estimate_counts_the_settled_clips():
    from genl import api
    from genl.settings import GenerateSettings

    s = GenerateSettings(prompt="a red circle", num_frames=128, steps=50, model="demo",
                         codenoise=CoDenoiseSettings(stride=16, schedule="settled", weights="pyramid"))
    clips = sum(len(SCHEDULES["settled"](128, 16, 16, k, num_steps=50)) for k in range(50))
    assert api.estimate(s)["frame_evals"] == clips * 16 * 2


def test_on_a_gpu_settled_is_estimated_at_the_moving_clips_rate_until_it_has_its_own_row(monkeypatch):
    import json

    from genl import api
    from genl.settings import GenerateSettings

    rows = json.loads(api.SPEED_RESULTS.read_text())["results"]
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setenv("GENL_COMPILE", "")
    s = GenerateSettings(prompt="a red circle", num_frames=128, steps=50, model="some/model",
                         codenoise=CoDenoiseSettings(stride=16, schedule="settled", weights="pyramid"))
    est = api.estimate(s)
    own = rows.get("ad_settled_compiled", {}).get("unet_frames_per_s")
    rate = own or rows["ad_shifted_compiled"]["unet_frames_per_s"]
    assert est["seconds"] == pytest.approx(est["frame_evals"] / rate)


def test_first_estimate_of_the_demo_web_default_on_a_cpu_is_near_what_it_took(monkeypatch):
    """Issue 12: the page promised 54 s for a job that took 308 s. Before any job has calibrated the machine,
    the static estimate of the demo's web default (46-51 s measured on 2 cores, assets/demo-model/README.md)
    and of the old 50-step default (about 280-308 s) must be in the right range."""
    from genl import api
    from genl.settings import GenerateSettings
    from ui.common import DEMO_QUICK

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    prompt = "0-31: a red circle moving right over grass | 32-63: a blue square bouncing over sand"
    quick = GenerateSettings(prompt=prompt, num_frames=64, width=128, height=128, steps=DEMO_QUICK["steps"],
                             scheduler=DEMO_QUICK["scheduler"], pipeline="animatediff",
                             codenoise=CoDenoiseSettings(stride=DEMO_QUICK["stride"], schedule=DEMO_QUICK["schedule"]))
    assert 30 <= api.estimate(quick)["seconds"] <= 90
    old = GenerateSettings(prompt=prompt, num_frames=64, width=128, height=128, steps=50, pipeline="animatediff",
                           codenoise=CoDenoiseSettings(stride=4))
    assert 200 <= api.estimate(old)["seconds"] <= 600
