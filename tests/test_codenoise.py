"""Exact tests of the co-denoising core, without a model."""
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    UniPCMultistepScheduler,
)

from genl.codenoise import co_denoise, make_windows, plan_batches, window_frames, window_weights
from genl.plan import CoDenoisePlan
from genl.sampling import Cancelled, co_denoise_sample

SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)


@pytest.mark.parametrize("n", [1, 5, 16, 17, 24, 50, 64, 100, 128, 129])
@pytest.mark.parametrize("m,s", [(1, 1), (4, 1), (4, 3), (8, 2), (8, 3), (16, 4), (16, 8), (16, 16), (16, 5)])
def test_windows_cover_every_frame(n, m, s):
    if m > n:
        with pytest.raises(ValueError, match="longer than the video"):
            make_windows(n, m, s)
        return
    windows = make_windows(n, m, s)
    covered = torch.zeros(n, dtype=torch.long)
    for start, end in windows:
        assert end - start == m and 0 <= start and end <= n
        covered[start:end] += 1
    assert bool((covered > 0).all())
    assert windows[0][0] == 0 and windows[-1][1] == n
    starts = [w[0] for w in windows]
    assert all(b - a == s for a, b in zip(starts[:-2], starts[1:-1]))  # regular stride, tail may be closer
    assert 0 < starts[-1] - starts[-2] <= s if len(starts) > 1 else True


def test_tail_window_added_and_exact_cases():
    assert make_windows(10, 4, 4) == [(0, 4), (4, 8), (6, 10)]
    assert make_windows(12, 4, 4) == [(0, 4), (4, 8), (8, 12)]
    assert make_windows(128, 16, 4)[-1] == (112, 128) and len(make_windows(128, 16, 4)) == 29
    assert make_windows(16, 16, 4) == [(0, 16)]


def test_window_errors():
    with pytest.raises(ValueError, match="Stride"):
        make_windows(32, 8, 9)
    with pytest.raises(ValueError, match="longer than the video"):
        make_windows(8, 16, 4)
    with pytest.raises(ValueError):
        make_windows(0, 4, 2)
    with pytest.raises(ValueError):
        make_windows(8, 0, 2)


def test_loop_windows_wrap_and_cover_evenly():
    n, m, s = 20, 8, 4
    windows = make_windows(n, m, s, loop=True)
    counts = torch.zeros(n)
    for w in windows:
        counts[window_frames(w, n)] += 1
    assert bool((counts == m // s).all())  # every frame in the same number of clips: no seam anywhere
    assert windows[-1][1] > n


@pytest.mark.parametrize("scheme", ["flat", "gaussian", "pyramid"])
def test_weights_positive_symmetric(scheme):
    for m in (1, 2, 7, 16):
        w = window_weights(scheme, m)
        assert w.shape == (m,) and bool((w > 0).all())
        assert torch.allclose(w, w.flip(0))
    with pytest.raises(ValueError, match="Unknown fusion weights"):
        window_weights("cosine-ish", 8)


def test_pyramid_values():
    assert window_weights("pyramid", 4).tolist() == [0.5, 1.0, 1.0, 0.5]
    assert window_weights("pyramid", 5).tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3])


def test_hand_computed_fusion():
    lat = torch.zeros(1, 1, 6, 1, 1)
    windows = make_windows(6, 4, 2)
    assert windows == [(0, 4), (2, 6)]
    values = {0: 1.0, 1: 3.0}
    denoise = lambda x, t, i: torch.full_like(x, values[i])  # noqa: E731
    flat = co_denoise(lat, 0, windows, [window_weights("flat", 4)] * 2, denoise).flatten().tolist()
    assert flat == pytest.approx([1, 1, 2, 2, 3, 3])
    pyr = co_denoise(lat, 0, windows, [window_weights("pyramid", 4)] * 2, denoise).flatten().tolist()
    # frame 2: clip 0 position 2 (w=1) says 1, clip 1 position 0 (w=.5) says 3 -> (1 + 1.5) / 1.5
    assert pyr == pytest.approx([1, 1, 2.5 / 1.5, (0.5 + 3.0) / 1.5, 3, 3])


def independent(x, t, i=None):
    """A model that treats every frame on its own: fusion must reproduce it exactly."""
    return torch.sin(3 * x) * 0.7 + 0.1 * x * (float(t) / 1000 + 1)


@pytest.mark.parametrize("scheme", ["flat", "gaussian", "pyramid"])
@pytest.mark.parametrize("n,m,s", [(24, 8, 4), (30, 16, 4), (17, 8, 3), (16, 16, 16)])
def test_independent_frames_equal_whole_video(scheme, n, m, s):
    lat = torch.randn(2, 4, n, 3, 5)
    windows = make_windows(n, m, s)
    out = co_denoise(lat, 500, windows, [window_weights(scheme, m)] * len(windows), independent)
    torch.testing.assert_close(out, independent(lat, 500), rtol=1e-6, atol=1e-6)


def test_batched_equals_unbatched():
    lat = torch.randn(1, 4, 40, 4, 4)
    windows = make_windows(40, 16, 4)
    weights = [window_weights("gaussian", 16)] * len(windows)
    coupled = lambda x, t, i: x - x.mean(dim=2, keepdim=True) + 0.01 * i  # noqa: E731
    calls = []

    def batch(x, t, indices):
        calls.append(len(indices))
        return torch.cat([coupled(x[k:k + 1], t, i) for k, i in enumerate(indices)])

    ref = co_denoise(lat, 10, windows, weights, coupled)
    out = co_denoise(lat, 10, windows, weights, denoise_batch=batch, windows_per_call=3)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert sum(calls) == len(windows) and max(calls) <= 3 and len(calls) == -(-len(windows) // 3)
    assert plan_batches(7, 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert [len(b) for b in plan_batches(29, 8)] == [8, 7, 7, 7]
    assert plan_batches(5, 8) == [[0, 1, 2, 3, 4]]


def test_frame_dim_other_than_two():
    lat = torch.randn(1, 12, 4, 3, 3)  # (batch, frames, channels, h, w) as AnimateDiff's image tensors
    windows = make_windows(12, 4, 2)
    out = co_denoise(lat, 1, windows, [window_weights("flat", 4)] * len(windows), independent, frame_dim=1)
    torch.testing.assert_close(out, independent(lat, 1), rtol=1e-6, atol=1e-6)


def test_isolated_when_stride_equals_length():
    lat = torch.randn(1, 4, 24, 2, 2)
    windows = make_windows(24, 8, 8)
    coupled = lambda x, t, i: torch.cumsum(x, dim=2) * (i + 1)  # noqa: E731  depends on the whole clip
    out = co_denoise(lat, 0, windows, [window_weights("pyramid", 8)] * 3, coupled)
    for i, (a, b) in enumerate(windows):
        torch.testing.assert_close(out[:, :, a:b], coupled(lat[:, :, a:b], 0, i), rtol=1e-6, atol=1e-6)


def test_closed_form_is_the_least_squares_minimiser():
    """Supp. III: sum_i ||sqrt(w_i)(F_i(v) - v^i)||^2 has zero gradient at the fused v."""
    n, m, s = 20, 8, 3
    windows = make_windows(n, m, s)
    weights = [window_weights("gaussian", m)] * len(windows)
    targets = {i: torch.randn(1, 2, m, 2, 2, dtype=torch.float64) for i in range(len(windows))}
    v = co_denoise(torch.zeros(1, 2, n, 2, 2, dtype=torch.float64), 0, windows, weights,
                   lambda x, t, i: targets[i].to(x.dtype)).requires_grad_(True)
    loss = sum(((weights[i].double().view(1, 1, -1, 1, 1)) * (v[:, :, a:b] - targets[i]) ** 2).sum()
               for i, (a, b) in enumerate(windows))
    loss.backward()
    assert v.grad.abs().max() < 1e-10


def test_fuse_eps_then_step_equals_paper_fuse_v_prev_for_ddim():
    """Fusing epsilon and stepping once == stepping every clip and fusing v_{t-1} (DDIM is affine in eps)."""
    sched = DDIMScheduler(**SD_BETAS, clip_sample=False, set_alpha_to_one=False)
    sched.set_timesteps(10)
    n, m, s = 28, 8, 4
    windows = make_windows(n, m, s)
    for scheme in ("flat", "gaussian", "pyramid"):
        weights = [window_weights(scheme, m)] * len(windows)
        lat = torch.randn(1, 4, n, 4, 4, dtype=torch.float64)
        model = lambda x, t, i: torch.tanh(x * (i + 1) / 3) + x.mean(dim=2, keepdim=True)  # noqa: E731
        for t in sched.timesteps[:3]:
            ours = sched.step(co_denoise(lat, t, windows, weights, model), t, lat).prev_sample
            paper = co_denoise(lat, t, windows, weights,
                               lambda x, tt, i: sched.step(model(x, tt, i), tt, x).prev_sample)
            torch.testing.assert_close(ours, paper, rtol=1e-10, atol=1e-10)


SCHEDULERS = [
    lambda: DDIMScheduler(**SD_BETAS, clip_sample=False, set_alpha_to_one=False),
    lambda: DPMSolverMultistepScheduler(**SD_BETAS, algorithm_type="dpmsolver++"),
    lambda: EulerDiscreteScheduler(**SD_BETAS),
    lambda: EulerAncestralDiscreteScheduler(**SD_BETAS),
    lambda: UniPCMultistepScheduler(**SD_BETAS),
    lambda: LCMScheduler(**SD_BETAS),
]


@pytest.mark.parametrize("make", SCHEDULERS, ids=["ddim", "dpm++", "euler", "euler_a", "unipc", "lcm"])
def test_full_sampling_with_independent_frames_equals_whole_video(make):
    n, m, s = 24, 8, 4
    windows = make_windows(n, m, s)
    weights = [window_weights("pyramid", m)] * len(windows)
    noise = torch.randn(1, 4, n, 4, 4, dtype=torch.float64)  # float64: exactness, not float32 round-off

    def run(fused: bool):
        sched = make()
        sched.set_timesteps(6)
        lat = noise * sched.init_noise_sigma
        if fused:
            gen = torch.Generator().manual_seed(0)
            plan = CoDenoisePlan(num_frames=n, clip_length=m, stride=s, weights="pyramid", windows_per_call=2)
            return co_denoise_sample(sched, lat, sched.timesteps, plan,
                                     lambda x, t, wins: torch.cat([independent(x[k:k + 1], t) for k in range(len(wins))]),
                                     generator=gen)
        gen = torch.Generator().manual_seed(0)
        for t in sched.timesteps:
            out = independent(sched.scale_model_input(lat, t), t)
            kw = {"generator": gen} if "generator" in sched.step.__code__.co_varnames else {}
            lat = sched.step(out, t, lat, **kw).prev_sample
        return lat

    torch.testing.assert_close(run(True), run(False), rtol=1e-6, atol=1e-6)


def test_callback_and_cancel():
    sched = DDIMScheduler(**SD_BETAS)
    sched.set_timesteps(5)
    plan = CoDenoisePlan(num_frames=8, clip_length=4, stride=2)
    windows = plan.windows
    seen = []

    def cb(event):
        seen.append((event["stage"], event["step"], event["total"], tuple(event["x0"].shape)))

    batch = lambda x, t, wins: independent(x, t)  # noqa: E731
    co_denoise_sample(sched, torch.randn(1, 4, 8, 2, 2), sched.timesteps, plan, batch, callback=cb)
    assert [s[1] for s in seen] == [1, 2, 3, 4, 5] and seen[0][3] == (1, 4, 8, 2, 2)
    calls = []
    with pytest.raises(Cancelled):
        co_denoise_sample(sched, torch.randn(1, 4, 8, 2, 2), sched.timesteps, plan,
                          lambda x, t, wins: calls.append(t) or independent(x, t),
                          is_cancelled=lambda: len(calls) >= 2 * len(windows))
    assert len(calls) == 2 * len(windows)  # stopped right after the second step's model calls


def test_cancel_between_window_batches_within_one_step():
    """A 960-frame video has 237 clips per step: a cancel is seen before the next batch, not the next step."""
    sched = DDIMScheduler(**SD_BETAS)
    sched.set_timesteps(5)
    plan = CoDenoisePlan(num_frames=960, clip_length=16, stride=4, windows_per_call=8)
    batches = []
    with pytest.raises(Cancelled):
        co_denoise_sample(sched, torch.randn(1, 1, 960, 1, 1), sched.timesteps, plan,
                          lambda x, t, wins: batches.append(list(wins)) or torch.zeros_like(x),
                          is_cancelled=lambda: len(batches) >= 3)
    assert len(batches) == 3 and len(plan.windows) == 237  # stopped inside the first step
    assert batches[0][0] == (0, 16) and len(batches[0]) == 8


def test_plan_gives_windows_per_step_from_its_schedule(monkeypatch):
    from genl import plan as plan_module

    fixed = CoDenoisePlan(num_frames=24, clip_length=8, stride=4, weights="pyramid")
    assert fixed.windows_at(0) == fixed.windows_at(7) == make_windows(24, 8, 4)
    assert all(torch.equal(w, window_weights("pyramid", 8)) for w in fixed.weights_at(3))

    def moving(n, m, s, step, *, loop=False):  # a schedule whose windows move every step
        return [(0, m)] + [(a + step % s, min(a + step % s + m, n)) for a in range(s, n - m, s)] + [(n - m, n)]

    monkeypatch.setitem(plan_module.SCHEDULES, "moving", moving)
    plan = CoDenoisePlan(num_frames=24, clip_length=8, stride=4, schedule="moving", windows_per_call=100)
    assert plan.windows_at(1) != plan.windows_at(2) and plan.windows_at(1)[1] == (5, 13)
    seen = []
    sched = DDIMScheduler(**SD_BETAS)
    sched.set_timesteps(3)
    co_denoise_sample(sched, torch.randn(1, 1, 24, 1, 1), sched.timesteps, plan,
                      lambda x, t, wins: seen.append(tuple(wins)) or torch.zeros_like(x))
    assert [w[1] for w in seen] == [(4, 12), (5, 13), (6, 14)]  # each step asked for its own windows
    with pytest.raises(ValueError, match="window schedule"):
        CoDenoisePlan(num_frames=24, clip_length=8, stride=4, schedule="nope")
