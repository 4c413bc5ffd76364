"""`python -m genl.demo train ...` trains the bundled demo model; `evaluate` measures its parse accuracy."""
import argparse
import json
import sys

from .train import TrainConfig, add_config_args
from .train_motion import TRAINABLE

# --smoke: every stage runs a few steps on a few rendered clips (a CPU check of the script, not a model)
SMOKE = dict(clips=32, motion_videos=6, minutes_vae=0.03, minutes_unet=0.03, minutes_motion=0.05, max_minutes=0,
             batch_vae=8, batch_unet=8, batch_motion=2, warmup=2, warmup_motion=2, log_every=2, probe_clips=2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m genl.demo")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the demo model from scratch on the shapes world")
    add_config_args(t, TrainConfig(), ("out", "stage", "init", "minutes_vae", "minutes_unet", "minutes_motion",
                                       "max_minutes", "clips", "batch_vae", "batch_unet", "batch_motion",
                                       "motion_videos", "lr_vae", "lr_unet", "lr_motion", "warmup", "warmup_motion",
                                       "ema_motion", "lr_2d_scale", "lr_text_scale", "text_words", "temporal_loss", "direction_contrast",
                                       "contrast_margin", "noise_share", "probe_clips", "log_every",
                                       "seed"))
    t.add_argument("--motion-train", choices=TRAINABLE, default=TrainConfig().motion_train,
                   help="what stage 3 trains: the motion modules alone (modules) or every UNet weight (all), "
                        "which lets the caption reach the motion path through the 2D cross-attention")
    t.add_argument("--motion-mix", type=float, nargs=3, default=TrainConfig().motion_mix,
                   help="shares of 16-frame clips, 17..64-frame segments and 64..128-frame multi-prompt videos")
    t.add_argument("--no-motion-warm-start", dest="motion_warm_start", action="store_false",
                   help="start the motion modules from scratch even when --init has matching ones")
    t.add_argument("--motion-layers", type=int, default=1,
                   help="temporal transformer layers per motion module (a new value starts them from scratch)")
    t.add_argument("--tiny", action="store_true", help="tiny sizes for a quick CPU check of the script")
    t.add_argument("--smoke", action="store_true",
                   help="seconds-long CPU check of the whole script: tiny sizes (unless --stage motion, which keeps "
                        "the --init bundle's), a few clips and videos, a few seconds per stage")
    e = sub.add_parser("evaluate", help="parse accuracy of generated videos against their prompts")
    e.add_argument("--model", default="demo")
    e.add_argument("--captions", type=int, default=10)
    e.add_argument("--frames", type=int, default=32)
    e.add_argument("--steps", type=int, default=20)
    e.add_argument("--pipelines", default="animatediff,tuning_free")
    e.add_argument("--size", type=int, default=128)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("-M", "--clip-length", type=int, default=16)
    e.add_argument("-S", "--stride", type=int, default=8)
    args = ap.parse_args(argv)
    if args.command == "train":
        kw = {k: v for k, v in vars(args).items() if k not in ("command", "tiny", "smoke", "motion_layers")}
        kw["motion_mix"] = tuple(kw["motion_mix"])
        if args.smoke:
            kw |= SMOKE
        cfg = TrainConfig(**kw)
        cfg.model.motion_transformer_layers = args.motion_layers
        if args.tiny or (args.smoke and args.stage != "motion"):
            from .components import ModelConfig
            cfg.model = ModelConfig(size=32, vae_channels=(8, 16), unet_channels=(16, 32, 32), text_dim=32,
                                    text_layers=1, norm_groups=8, attention_heads=2, motion_heads=2,
                                    motion_transformer_layers=args.motion_layers)
        from .train import train
        train(cfg)
        return 0
    from .evaluate import evaluate
    print(json.dumps(evaluate(args.model, args.pipelines.split(","), args.captions, args.frames, args.steps,
                              args.size, args.seed, args.clip_length, args.stride), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
