"""Tiny random-weight components built from configs (as diffusers' own tests do), saved in the standard
diffusers folder layout so the real loading code in genl/models.py is what tests exercise. No network."""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AnimateDiffPipeline,
    AutoencoderKL,
    DDIMScheduler,
    MotionAdapter,
    StableDiffusionPipeline,
    TextToVideoSDPipeline,
    UNet2DConditionModel,
    UNet3DConditionModel,
)
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

WORDS = ("a an the red green blue yellow circle square triangle star moving left right up down over grass "
         "sky sand night snow cat dog car jeep beach sunny rainy blurry dark painting of in on at").split()


def tiny_tokenizer(max_length: int = 16) -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, pad_token="<pad>",
                                   unk_token="<unk>", bos_token="<bos>", eos_token="<eos>")


def tiny_text_encoder(vocab_size: int, dim: int = 32) -> CLIPTextModel:
    torch.manual_seed(0)
    return CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, hidden_size=dim, intermediate_size=37,
                                        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32,
                                        bos_token_id=2, eos_token_id=3, pad_token_id=0)).eval()


def tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         latent_channels=4, norm_num_groups=8, sample_size=32,
                         scaling_factor=4.0)  # like SD's 0.18215: scales this VAE's latents to unit variance


def tiny_unet(cross_dim: int = 32) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=cross_dim,
                                norm_num_groups=8, attention_head_dim=4)


def tiny_scheduler() -> DDIMScheduler:
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def tiny_components() -> dict:
    tok = tiny_tokenizer()
    return dict(vae=tiny_vae(), text_encoder=tiny_text_encoder(len(tok)), tokenizer=tok, unet=tiny_unet(),
                scheduler=tiny_scheduler())


def tiny_motion_adapter() -> MotionAdapter:
    torch.manual_seed(0)
    return MotionAdapter(block_out_channels=(16, 32), motion_layers_per_block=1, motion_norm_num_groups=8,
                         motion_num_attention_heads=2, motion_max_seq_length=32)


def tiny_unet3d(cross_dim: int = 32) -> UNet3DConditionModel:
    torch.manual_seed(0)
    return UNet3DConditionModel(block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=cross_dim,
                                attention_head_dim=4, norm_num_groups=8)


def save_tiny_models(folder) -> dict:
    """Write tiny SD-1.5, AnimateDiff and ModelScope (UNet3D) layout models; returns their folders."""
    folder = Path(folder)
    sd_dir, ad_dir, t3_dir = folder / "tiny-sd", folder / "tiny-animatediff", folder / "tiny-unet3d"
    c = tiny_components()
    StableDiffusionPipeline(**c, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(sd_dir)
    c = tiny_components()
    AnimateDiffPipeline(motion_adapter=tiny_motion_adapter(), **c).save_pretrained(ad_dir)
    c = tiny_components()
    c["unet"] = tiny_unet3d()
    TextToVideoSDPipeline(**c).save_pretrained(t3_dir)
    return {"sd": str(sd_dir), "animatediff": str(ad_dir), "unet3d": str(t3_dir)}


_SAVED: dict = {}


def cached_tiny_models() -> dict:
    """`save_tiny_models` once per test process (into a temp folder), shared by every test that needs them."""
    if not _SAVED:
        import tempfile

        _SAVED.update(save_tiny_models(Path(tempfile.mkdtemp(prefix="genl-tiny-"))))
    return dict(_SAVED)
