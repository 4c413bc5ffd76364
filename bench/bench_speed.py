"""Speed and memory of long-video generation, every schedule and the diffusers FreeNoise baseline in ONE run
on the same GPU (issue 11). Random weights with the real SD-1.5 / AnimateDiff v1.5 architectures, fp16.

Canonical job: 128 frames, 512x512, 50 DDIM steps, CFG 7.5, M=16, pyramid weights, VAE decode included.
Each configuration runs `--steps` denoising steps after a warm-up (which, for compiled ones, is the compile
time); "50-step s" projects to the canonical 50 steps (per-clip cost x clips of all 50 steps, or per-step
cost x 50 when the UNet runs once per step on the whole video) plus the measured decode of all frames.

Configurations (names for --only / --skip; a prefix such as `ad_` or a suffix such as `_compiled` selects a group):
  ad_freenoise         diffusers AnimateDiffPipeline + enable_free_noise(context_length=16, context_stride=4)
  ad_isolated_eager    fixed S=M clips (no co-denoising: the cost floor of per-clip fusion)
  ad_paper_eager/_compiled          the paper's schedule: fixed windows, S=4, fused model outputs
  ad_shifted_eager/_compiled        shifted_windows, S=M: the grid moves every step, fused model outputs
  ad_settled_eager/_compiled        "settled": the first 10 % of steps fixed S=M/2 clips, then shifted S=M;
                                    the compiled row runs all 50 steps and the decode (9 clips per call, as
                                    the studio stacks them: 3 per call ran at half the throughput)
  ad_motion_paper_eager/_compiled   S=4 windows fused inside the motion modules (spatial layers once per frame)
  ad_motion_shifted_eager/_compiled shifted S=M windows fused inside the motion modules
  ad_motion_settled_compiled        settled windows fused inside the motion modules, all 50 steps and the decode
  ad_1024_shifted      1024 frames, 1 step, shifted, per-clip fusion: peak memory
  ad_16gib_shifted     the canonical job with the process capped to 16 GiB, 2 clips per call, decode included
  sd_isolated_eager, sd_paper_eager/_compiled, sd_shifted_eager/_compiled, sd_settled_compiled: SD-1.5
                       tuning-free with bi-directional cross-frame attention
  sd_partitioned_eager/_compiled    "partitioned": disjoint clips whose cuts move every step, joined in one
                       call per step, so each frame is denoised once (128 frames where shifted takes ~143);
                       the compiled row runs all 50 steps and the decode
`--sdpa cudnn|flash|efficient` restricts PyTorch's attention kernels (default: PyTorch's own choice).

    python bench/bench_speed.py --steps 6 --out bench/results                  # GPU, whole run
    python bench/bench_speed.py --steps 6 --only ad_ --out bench/results       # AnimateDiff only
    python bench/bench_speed.py --smoke --out /tmp/speed-smoke                  # tiny models on CPU
Results are merged into OUT/speed.json (by configuration name) and OUT/speed.md after every configuration.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from genl.accel import accelerate_unet  # noqa: E402
from genl.attention import set_cross_frame_attention  # noqa: E402
from genl.plan import CoDenoisePlan  # noqa: E402
from genl.pipelines.common import TextConditions, decode_latents, guided, image_unet_denoiser  # noqa: E402
from genl.pipelines.text2video import sample_motion_fused  # noqa: E402
from genl.sampling import co_denoise_sample  # noqa: E402
from genl.timeline import Timeline  # noqa: E402

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77)
MOTION = {}  # MotionAdapter() defaults are AnimateDiff v1.5's
TINY_UNET = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), norm_num_groups=8,
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                sample_size=16)
TINY_TEXT = dict(vocab_size=64, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=77)
TINY_MOTION = dict(block_out_channels=(32, 64), motion_layers_per_block=1, motion_norm_num_groups=8,
                   motion_num_attention_heads=2, motion_max_seq_length=32)
SD_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                set_alpha_to_one=False, steps_offset=1)
CANONICAL_STEPS = 50


@dataclass
class Config:
    name: str
    model: str  # "ad" (AnimateDiff) or "sd" (SD-1.5 tuning-free, bi-directional attention)
    schedule: str = "paper"  # paper | shifted | isolated | freenoise
    fusion: str = "output"  # output (per clip) | motion (inside motion modules)
    compiled: bool = False
    frames: int = 0  # 0: --frames
    steps: int = 0  # 0: --steps
    memory_gib: float = 0.0  # cap the process to this much GPU memory
    windows_per_call: int = 0  # 0: --windows-per-call
    decode: bool = False  # decode inside the timed run (otherwise the measured decode rate is added)


def stride_of(cfg: Config, clip: int) -> int:
    return clip if cfg.schedule in ("shifted", "isolated", "settled", "partitioned") else max(1, clip // 4)


# bench name -> genl/plan.py
PLAN_SCHEDULE = {"paper": "fixed", "isolated": "fixed", "shifted": "shifted", "settled": "settled",
                 "partitioned": "partitioned"}


def real_unet(model: str, device, dtype, smoke: bool = False):
    """A random-weight UNet with the real SD-1.5 ("sd") or AnimateDiff v1.5 ("ad"/"animatediff") architecture
    (the tiny one for smoke runs), seeded so every build has the same weights; and its motion adapter."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    torch.manual_seed(0)
    adapter = None
    unet = UNet2DConditionModel(**(TINY_UNET if smoke else SD15_UNET))  # built on the CPU, then moved
    if model in ("ad", "animatediff"):
        adapter = MotionAdapter(**(TINY_MOTION if smoke else MOTION))
        unet = UNetMotionModel.from_unet2d(unet, adapter)
    return unet.to(device, dtype).eval(), adapter


def random_text(num_frames: int, dim: int, device, dtype, per_frame: bool) -> TextConditions:
    """One random prompt embedding (and negative) over the whole video: the text cost of the real job."""
    gen = torch.Generator("cpu").manual_seed(0)
    pos, neg = (torch.randn(1, 77, dim, generator=gen).to(device, dtype) for _ in range(2))
    timeline = Timeline.from_rows([(0, num_frames - 1, "a red circle moving left")])
    return TextConditions(timeline, num_frames, pos, neg, dtype=dtype, per_frame=per_frame)


SHIFTED_PER_CALL = 9  # all clips of a shifted 128-frame step (8 or 9) in one call: 2 batch shapes to compile
CONFIGS = [  # eager first: compiling is in place, so a model stays compiled for every later configuration
    Config("ad_freenoise", "ad", "freenoise"),
    Config("ad_isolated_eager", "ad", "isolated"),
    Config("ad_paper_eager", "ad", "paper"),
    Config("ad_shifted_eager", "ad", "shifted", windows_per_call=SHIFTED_PER_CALL),
    Config("ad_motion_paper_eager", "ad", "paper", "motion"),
    Config("ad_motion_shifted_eager", "ad", "shifted", "motion"),
    Config("ad_settled_eager", "ad", "settled", windows_per_call=SHIFTED_PER_CALL),
    Config("ad_1024_shifted", "ad", "shifted", frames=1024, steps=1),
    Config("ad_16gib_shifted", "ad", "shifted", steps=2, memory_gib=16.0, windows_per_call=2, decode=True),
    Config("sd_isolated_eager", "sd", "isolated"),
    Config("sd_paper_eager", "sd", "paper"),
    Config("sd_shifted_eager", "sd", "shifted", windows_per_call=SHIFTED_PER_CALL),
    Config("sd_partitioned_eager", "sd", "partitioned", windows_per_call=SHIFTED_PER_CALL),
    Config("ad_motion_shifted_compiled", "ad", "shifted", "motion", compiled=True),
    Config("ad_motion_paper_compiled", "ad", "paper", "motion", compiled=True),
    Config("ad_shifted_compiled", "ad", "shifted", compiled=True, windows_per_call=SHIFTED_PER_CALL),
    Config("ad_paper_compiled", "ad", "paper", compiled=True),
    Config("ad_motion_settled_compiled", "ad", "settled", "motion", compiled=True, steps=50, decode=True),
    Config("ad_settled_compiled", "ad", "settled", compiled=True, windows_per_call=SHIFTED_PER_CALL, steps=50,
           decode=True),
    Config("sd_shifted_compiled", "sd", "shifted", compiled=True, windows_per_call=SHIFTED_PER_CALL),
    Config("sd_paper_compiled", "sd", "paper", compiled=True),
    Config("sd_partitioned_compiled", "sd", "partitioned", compiled=True, windows_per_call=SHIFTED_PER_CALL,
           steps=50, decode=True),
    Config("sd_settled_compiled", "sd", "settled", compiled=True, windows_per_call=SHIFTED_PER_CALL, steps=50,
           decode=True),
]


class Bench:
    """Models built once per family and compiled in place the first time a compiled config needs them."""

    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.device = torch.device("cpu" if self.smoke else "cuda")
        self.dtype = torch.float32 if self.smoke else torch.float16
        self.clip = args.clip
        self.size = 16 if self.smoke else args.size
        self.latent = self.size // (2 if self.smoke else 8)
        self.unets: dict = {}
        self.compiled: dict = {}
        self.vae = None
        self.decode_s_per_frame = None
        self.cross_dim = 32 if self.smoke else 768

    # ---- components -----------------------------------------------------------------------------
    def new_unet(self, model: str):
        """A fresh random-weight UNet (seeded, so every build has the same weights) and its motion adapter."""
        return real_unet(model, self.device, self.dtype, self.smoke)

    def build_unet(self, model: str):
        if model not in self.unets:
            unet, _ = self.new_unet(model)
            if model == "sd":
                set_cross_frame_attention(unet, "bidirectional", self.clip)
            self.unets[model] = unet
        return self.unets[model]

    def compiled_unet(self, model: str):
        if model not in self.compiled:
            unet = self.build_unet(model)
            self.compiled[model] = accelerate_unet(unet, self.args.compile, channels_last=self.args.channels_last,
                                                   dynamic={"auto": None, "static": False,
                                                            "dynamic": True}[self.args.dynamic])
        return self.compiled[model]

    def build_vae(self):
        from diffusers import AutoencoderKL

        if self.vae is None:
            torch.manual_seed(0)
            with torch.device(self.device):
                self.vae = AutoencoderKL(**(TINY_VAE if self.smoke else SD15_VAE))
            self.vae = self.vae.to(self.device, self.dtype).eval()
        return self.vae

    def decode_seconds(self, frames: int) -> float:
        """Seconds to decode `frames` latents, 8 frames per VAE call (measured once on 32 frames)."""
        if self.decode_s_per_frame is None:
            vae = self.build_vae()
            z = torch.randn(1, 4, 32 if not self.smoke else 8, self.latent, self.latent, device=self.device)
            decode_latents(vae, z[:, :, :8])  # warm-up
            sync()
            t = time.perf_counter()
            decode_latents(vae, z)
            sync()
            self.decode_s_per_frame = (time.perf_counter() - t) / z.shape[2]
        return self.decode_s_per_frame * frames

    # ---- one configuration ------------------------------------------------------------------------
    @torch.no_grad()  # sampling only: without this autograd keeps every activation (77 GiB OOM at 512x512)
    def run(self, cfg: Config) -> dict:
        frames = cfg.frames or self.args.frames
        if self.smoke and cfg.frames:
            frames = max(self.clip * 5, 80)
        steps = cfg.steps or self.args.steps
        if cfg.memory_gib:
            if self.device.type != "cuda":
                return {"skipped": "needs CUDA (torch.cuda.set_per_process_memory_fraction)"}
            total = torch.cuda.get_device_properties(0).total_memory
            for other in [m for m in self.unets if m != cfg.model]:  # a 16 GiB card holds one model
                self.unets.pop(other), self.compiled.pop(other, None)
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.set_per_process_memory_fraction(min(1.0, cfg.memory_gib * 2**30 / total))
        try:
            if cfg.schedule == "freenoise":
                return self.run_freenoise(frames, steps)
            return self.run_ours(cfg, frames, steps)
        finally:
            if cfg.memory_gib:
                torch.cuda.set_per_process_memory_fraction(1.0)

    def run_ours(self, cfg: Config, frames: int, steps: int) -> dict:
        from diffusers import DDIMScheduler

        clip, guidance = self.clip, self.args.guidance
        stride = stride_of(cfg, clip)
        unet = self.compiled_unet(cfg.model) if cfg.compiled else self.build_unet(cfg.model)
        per_call = cfg.windows_per_call or self.args.windows_per_call
        plan = CoDenoisePlan(num_frames=frames, clip_length=clip, stride=stride, weights="pyramid",
                             schedule=PLAN_SCHEDULE[cfg.schedule], windows_per_call=per_call,
                             num_steps=CANONICAL_STEPS)
        text = random_text(frames, self.cross_dim, self.device, self.dtype, per_frame=True)

        if cfg.model == "ad":
            def denoise(x, t, windows):
                cond, uncond = text.frame_states(windows)
                x = x.to(self.dtype)
                out = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
                return guided(out, guidance)
        else:
            denoise = image_unet_denoiser(unet, text, frames, guidance)

        sched = DDIMScheduler(**SD_SCHED)
        sched.set_timesteps(CANONICAL_STEPS, device=self.device)
        gen = torch.Generator(self.device).manual_seed(0)
        latents = torch.randn(1, 4, frames, self.latent, self.latent, device=self.device, generator=gen)

        @torch.no_grad()  # sampling only (see run)
        def sample(count):
            timesteps = sched.timesteps[:count]
            if cfg.fusion == "motion":  # wraps the eager model's motion modules (compiled blocks stay inside)
                return sample_motion_fused(self.unets[cfg.model], sched, latents.clone(), timesteps, plan, denoise,
                                           motion_windows_per_call=self.args.motion_windows_per_call)
            return co_denoise_sample(sched, latents.clone(), timesteps, plan, denoise)

        # every batch shape: shifted steps have 8 or 9 clips; settled ones 15 (first 5 steps), then 8 or 9
        # partitioned: step 0 stacks 8 equal clips, later steps join 9 (one more graph: the frame layout)
        warm_steps = 0 if frames > 256 else {"shifted": 2, "settled": 7, "partitioned": 2}.get(cfg.schedule, 1)
        sync()
        t0 = time.perf_counter()
        if warm_steps:
            sample(warm_steps)
        sync()
        warm_s = time.perf_counter() - t0
        reset_peak()
        t0 = time.perf_counter()
        out = sample(steps)
        if cfg.decode:
            decode_latents(self.build_vae(), out)
        sync()
        seconds = time.perf_counter() - t0
        peak = peak_gib()

        all_clips = plan.clips_over(CANONICAL_STEPS)
        decode_s = 0.0 if cfg.decode else self.decode_seconds(frames)
        denoise_s = seconds - (self.decode_seconds(frames) if cfg.decode else 0.0)
        if cfg.fusion == "motion":
            projected = denoise_s / steps * CANONICAL_STEPS
            unet_frames = 2 * frames * steps  # spatial layers once per frame
        else:
            all_frames, measured_frames = plan.frames_over(CANONICAL_STEPS), plan.frames_over(steps)
            projected = denoise_s / measured_frames * all_frames
            unet_frames = 2 * measured_frames
        return {"frames": frames, "clip": clip, "stride": stride, "schedule": cfg.schedule, "fusion": cfg.fusion,
                "compiled": self.args.compile if cfg.compiled else "eager", "windows_per_call": per_call,
                "channels_last": bool(cfg.compiled and self.args.channels_last),
                "cudnn_benchmark": torch.backends.cudnn.benchmark, "sdpa": self.args.sdpa,
                "clips_per_step": round(all_clips / CANONICAL_STEPS, 2), "steps_measured": steps,
                "seconds_measured": round(seconds, 2), "seconds_per_step": round(denoise_s / steps, 3),
                "warmup_s": round(warm_s, 1), "unet_frames_per_s": round(unet_frames / denoise_s, 1),
                "projected_50_steps_s": round(projected + decode_s + (self.decode_seconds(frames) if cfg.decode
                                                                       else 0.0), 1),
                "decode_s": round(self.decode_seconds(frames), 2), "peak_gib": peak,
                "memory_cap_gib": cfg.memory_gib or None}

    def run_freenoise(self, frames: int, steps: int) -> dict:
        from diffusers import AnimateDiffPipeline, DDIMScheduler
        from transformers import CLIPTextConfig, CLIPTextModel

        unet, adapter = self.new_unet("ad")  # its own copy: FreeNoise swaps the motion modules' blocks
        with torch.device(self.device):
            text_encoder = CLIPTextModel(CLIPTextConfig(**(TINY_TEXT if self.smoke else SD15_TEXT)))
        pipe = AnimateDiffPipeline(vae=self.build_vae(), text_encoder=text_encoder.to(self.device, self.dtype),
                                   tokenizer=local_tokenizer(), unet=unet, motion_adapter=adapter,
                                   scheduler=DDIMScheduler(**SD_SCHED))
        pipe.set_progress_bar_config(disable=True)
        pipe.enable_free_noise(context_length=self.clip, context_stride=max(1, self.clip // 4),
                               weighting_scheme="pyramid")
        pipe.unet.to(self.dtype)  # FreeNoise's replacement blocks are created in float32

        def call(n):
            return pipe(prompt="a red circle moving left", negative_prompt="", num_frames=frames, height=self.size,
                        width=self.size, num_inference_steps=n, guidance_scale=self.args.guidance,
                        output_type="latent", generator=torch.Generator("cpu").manual_seed(0)).frames

        try:
            sync()
            t0 = time.perf_counter()
            call(1)
            sync()
            warm_s = time.perf_counter() - t0
            reset_peak()
            t0 = time.perf_counter()
            call(steps)
            sync()
            seconds = time.perf_counter() - t0
            peak = peak_gib()
        finally:
            del pipe, unet
            gc.collect()
        decode_s = self.decode_seconds(frames)
        return {"frames": frames, "clip": self.clip, "stride": max(1, self.clip // 4), "schedule": "freenoise",
                "fusion": "motion (diffusers FreeNoise)", "compiled": "eager", "windows_per_call": None,
                "steps_measured": steps, "seconds_measured": round(seconds, 2),
                "seconds_per_step": round(seconds / steps, 3), "warmup_s": round(warm_s, 1),
                "unet_frames_per_s": round(2 * frames * steps / seconds, 1),
                "projected_50_steps_s": round(seconds / steps * CANONICAL_STEPS + decode_s, 1),
                "decode_s": round(decode_s, 2), "peak_gib": peak, "memory_cap_gib": None}


def local_tokenizer():
    """A word-level CLIP-shaped tokenizer built offline (77 tokens, like SD-1.5's); its ids are all the
    random text encoder needs."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3}
    for w in "a red circle moving left right".split():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=77, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<bos>", eos_token="<eos>")


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak():
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib():
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def environment(args) -> dict:
    import diffusers

    info = {"torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
            "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M"), "smoke": args.smoke,
            "compile": args.compile, "dynamic": args.dynamic, "channels_last": args.channels_last,
            "sdpa": args.sdpa,
            "job": f"{args.frames} frames, {args.size}x{args.size}, M={args.clip}, CFG {args.guidance}, "
                   f"DDIM, pyramid weights, fp16, windows per call {args.windows_per_call}"}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                 "cuda": torch.version.cuda}
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def selected(args) -> list[Config]:
    def match(name, patterns):
        return any(name.startswith(p) or name.endswith(p) for p in patterns)

    only = [p for p in (args.only or "").split(",") if p]
    skip = [p for p in (args.skip or "").split(",") if p]
    return [c for c in CONFIGS if (not only or match(c.name, only)) and not match(c.name, skip)]


def write(out: Path, data: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(data, indent=2))
    (out / "speed.md").write_text(markdown(data))


def markdown(data: dict) -> str:
    info, rows = data["info"], data["results"]
    lines = ["# Speed (issue 11): one run, one GPU", "",
             "Written by `bench/bench_speed.py`. " + ", ".join(f"{k}={v}" for k, v in info.items()), "",
             "50-step s: the canonical 50-step job projected from the measured steps (per-clip cost x clips of "
             "all 50 steps, or per-step cost x 50 for whole-video UNet calls) plus the VAE decode of every "
             "frame. UNet frames/s counts images through the spatial layers (both CFG halves).", ""]
    base = rows.get("ad_freenoise", {}).get("projected_50_steps_s")
    for model, title in (("ad", "AnimateDiff v1.5"), ("sd", "SD-1.5 tuning-free, bi-directional attention")):
        names = list(dict.fromkeys(n for c in CONFIGS if c.model == model for n in sorted(rows)
                                   if n == c.name or n.startswith(c.name + "_")))
        if not names:
            continue
        cols = ["config", "schedule", "fusion", "compiled", "frames", "clips/step", "steps run", "s/step",
                "50-step s", "vs FreeNoise", "UNet frames/s", "peak GiB", "warm-up s"]
        lines += [f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for name in names:
            r = rows[name]
            if "error" in r or "skipped" in r:
                lines.append(f"| {name} | " + (r.get("skipped") or "failed: " + r["error"][:160])
                             + " |" + " |" * (len(cols) - 2))
                continue
            speedup = (f"{base / r['projected_50_steps_s']:.2f}x" if base and model == "ad"
                       and r["frames"] == rows["ad_freenoise"].get("frames") and not r.get("memory_cap_gib")
                       else "")
            extra = f" (cap {r['memory_cap_gib']} GiB)" if r.get("memory_cap_gib") else ""
            lines.append("| " + " | ".join(str(v) for v in [
                name + extra, r["schedule"], r["fusion"], build_of(r), r["frames"], r.get("clips_per_step", ""),
                r["steps_measured"], r["seconds_per_step"], r["projected_50_steps_s"], speedup,
                r["unet_frames_per_s"], r["peak_gib"], r["warmup_s"]]) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def build_of(row: dict) -> str:
    """How the UNet ran: eager or compiled, plus channels-last and cuDNN autotuning where they were on."""
    return row["compiled"] + ("+channels-last" if row.get("channels_last") else "") + (
        "+cudnn-benchmark" if row.get("cudnn_benchmark") else "") + (
        f"+sdpa-{row['sdpa']}" if row.get("sdpa", "auto") != "auto" else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--steps", type=int, default=CANONICAL_STEPS, help="denoising steps measured per config")
    ap.add_argument("--only", default="", help="comma-separated config names or prefixes (e.g. ad_,sd_paper)")
    ap.add_argument("--skip", default="", help="comma-separated config names or prefixes to leave out")
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--clip", type=int, default=16)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--windows-per-call", type=int, default=8)
    ap.add_argument("--motion-windows-per-call", type=int, default=9,
                    help="clips stacked per motion-module call when fusing inside motion modules")
    ap.add_argument("--compile", choices=["regional", "full"], default="regional")
    ap.add_argument("--dynamic", choices=["auto", "static", "dynamic"], default="static",
                    help="compiled shapes: static (one graph per block shape and batch; default), dynamic, or "
                         "PyTorch's automatic choice (auto failed in Inductor on CPU with torch 2.13)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN time its convolution algorithms per shape (static shapes per job)")
    ap.add_argument("--sdpa", choices=["auto", "cudnn", "flash", "efficient"], default="auto",
                    help="PyTorch attention kernel: its own choice, or only this one (math stays as the fallback)")
    ap.add_argument("--tag", default="", help="suffix for the result names (e.g. _restart: a second process "
                                                 "that finds Inductor's on-disk cache)")
    ap.add_argument("--fresh", action="store_true", help="start a new speed.json instead of merging")
    ap.add_argument("--smoke", action="store_true", help="tiny random models on the CPU, to check the script")
    args = ap.parse_args()
    if args.smoke:
        args.frames, args.steps = min(args.frames, 40), min(args.steps, 2)
    elif not torch.cuda.is_available():
        raise SystemExit("No CUDA GPU: run on a GPU, or use --smoke to check the script on the CPU.")
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.sdpa != "auto":  # set before any compile: Inductor picks the kernel while tracing
        torch.backends.cuda.enable_cudnn_sdp(args.sdpa == "cudnn")
        torch.backends.cuda.enable_flash_sdp(args.sdpa == "flash")
        torch.backends.cuda.enable_mem_efficient_sdp(args.sdpa == "efficient")
    out = Path(args.out)
    data = {"info": {}, "results": {}}
    if (out / "speed.json").exists() and not args.fresh:
        data = json.loads((out / "speed.json").read_text())
    data["info"] = environment(args)
    bench = Bench(args)
    for cfg in selected(args):
        t0 = time.perf_counter()
        try:
            row = bench.run(cfg)
        except Exception as exc:  # one failing configuration must not lose the others
            row = {"error": "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[0][:500]}
            traceback.print_exc()
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        row["gpu"] = data["info"].get("gpu", data["info"].get("cpu"))
        row["date"] = data["info"]["date"]
        data["results"][cfg.name + args.tag] = row
        print(f"[{cfg.name + args.tag}] " + json.dumps(row), flush=True)
        write(out, data)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print(markdown(data))


if __name__ == "__main__":
    main()
