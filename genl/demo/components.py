"""Configs of the demo model's components and the tokenizer over the world's caption vocabulary."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

from genl.demo.world import BACKGROUNDS, COLOURS, SHAPES

# Every word `genl.demo.world.caption` can produce; anything else maps to <unk>.
CAPTION_WORDS = (("a", "an", "over", "moving", "left", "right", "up", "down", "bouncing", "staying", "still",
                  "growing") + COLOURS + SHAPES + BACKGROUNDS)


@dataclass
class ModelConfig:
    """Sizes chosen so the whole folder stays under 40 MB in fp16 and trains in minutes on one GPU.

    128 px frames through an 8x VAE give 16x16x4 latents, the same latent size SD uses per 8x8 pixels."""
    size: int = 128
    vae_channels: tuple = (32, 64, 64, 64)
    latent_channels: int = 4
    text_dim: int = 128
    text_layers: int = 3
    max_length: int = 16
    unet_channels: tuple = (64, 128, 128)
    unet_layers_per_block: int = 1
    attention_heads: int = 8
    motion_heads: int = 8
    motion_transformer_layers: int = 1  # temporal transformer layers per motion module (capacity of stage 3)
    norm_groups: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


def build_tokenizer(max_length: int = 16) -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3}
    for w in CAPTION_WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # "A red circle, moving right." tokenizes like the caption
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex("[^a-z]+"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, pad_token="<pad>",
                                   unk_token="<unk>", bos_token="<bos>", eos_token="<eos>")


def build_text_encoder(cfg: ModelConfig, vocab_size: int) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, hidden_size=cfg.text_dim,
                                        intermediate_size=4 * cfg.text_dim, num_hidden_layers=cfg.text_layers,
                                        num_attention_heads=4, max_position_embeddings=cfg.max_length,
                                        bos_token_id=2, eos_token_id=3, pad_token_id=0))


def build_vae(cfg: ModelConfig):
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    return AutoencoderKL(block_out_channels=cfg.vae_channels, in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                         latent_channels=cfg.latent_channels, norm_num_groups=cfg.norm_groups, layers_per_block=1,
                         sample_size=cfg.size)


def build_unet(cfg: ModelConfig):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(block_out_channels=cfg.unet_channels, layers_per_block=cfg.unet_layers_per_block,
                                sample_size=cfg.size // 2 ** (len(cfg.vae_channels) - 1),
                                in_channels=cfg.latent_channels, out_channels=cfg.latent_channels,
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=cfg.text_dim, norm_num_groups=cfg.norm_groups,
                                attention_head_dim=cfg.attention_heads)


def build_motion_adapter(cfg: ModelConfig):
    from diffusers import MotionAdapter

    return MotionAdapter(block_out_channels=cfg.unet_channels, motion_layers_per_block=cfg.unet_layers_per_block,
                         motion_transformer_layers_per_block=cfg.motion_transformer_layers,
                         motion_transformer_layers_per_mid_block=cfg.motion_transformer_layers,
                         motion_num_attention_heads=cfg.motion_heads, motion_norm_num_groups=cfg.norm_groups,
                         motion_max_seq_length=32)


def build_scheduler():
    """SD's training schedule; DDIM settings as SD-1.5 ships them."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                         prediction_type="epsilon")
