"""A frame-wise 'denoiser' and a sampler run against the whole video: fusing any windows over any schedule
must reproduce what denoising every frame on its own gives, so window plans are tested exactly, without a model."""
import torch
from diffusers import DDIMScheduler

SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                clip_sample=False, set_alpha_to_one=False)


def frame_wise(x: torch.Tensor, t) -> torch.Tensor:
    """Each frame on its own (plus a per-frame mean over channels and pixels): no frame sees another."""
    a = 0.3 + 0.001 * float(t)
    return torch.tanh(a * x) + 0.1 * x.mean(dim=(1, 3, 4), keepdim=True)


def sample_against_whole_video(plan, latents: torch.Tensor, num_steps: int):
    """(co-denoised result, whole-video reference, {timestep: windows the denoiser saw}, timesteps)."""
    from genl.sampling import co_denoise_sample

    sched_a, sched_b = DDIMScheduler(**SD_BETAS), DDIMScheduler(**SD_BETAS)
    sched_a.set_timesteps(num_steps)
    sched_b.set_timesteps(num_steps)
    seen = {}

    def denoise(x, t, windows):
        seen.setdefault(int(t), []).extend(windows)
        return frame_wise(x, t)

    got = co_denoise_sample(sched_a, latents.clone(), sched_a.timesteps, plan, denoise)
    want = latents.clone()
    for t in sched_b.timesteps:
        want = sched_b.step(frame_wise(want, t), t, want).prev_sample
    return got, want, seen, sched_a.timesteps
