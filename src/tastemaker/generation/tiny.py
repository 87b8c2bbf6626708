"""Tiny randomly initialised models built offline from configs.

Tests, the demo and the docs need a text-to-image pipeline and a causal LM that
exist without downloading weights; these have the real architectures (CLIP text
encoder, UNet with cross-attention, KL autoencoder, Llama) at toy sizes, so the
code paths are the ones real checkpoints take. Their images are noise-like.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

# Words that become single tokens of the tiny byte-level BPE vocabulary (any other
# word still tokenizes, letter by letter), chosen from prompts the tests and demo write.
_WORDS = (
    "a an the of and with in on for by at to from is this that style "
    "movie poster film photo product sticker emoticon emoji cartoon illustration painting "
    "portrait landscape cinematic dramatic lighting colorful vintage retro futuristic neon "
    "noir dark bright moody warm cold soft sharp detailed simple minimalist epic cute funny "
    "happy sad angry love action comedy drama horror romance thriller fantasy animation "
    "adventure crime mystery war western musical documentary children family sci fi space "
    "city night sunset ocean forest robot hero villain explosion car dog cat astronaut coffee "
    "cup black white red blue green gold background high low quality blurry watermark text "
    "deformed ugly logo shoes dress bag watch"
)

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _byte_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary (CLIP layout: ``</w>`` marks a word's end) and its merges.

    Every byte is a token, so any text encodes. Each word of :data:`_WORDS` is first
    split as BPE would with the merges so far, then its pieces are merged left to
    right; the new merges rank after the old ones, so every listed word is one token.
    """
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    tokens = [*alphabet, *(f"{c}</w>" for c in alphabet)]
    ranks: dict[tuple[str, str], int] = {}
    for word in _WORDS.split():
        pieces = [*word[:-1], f"{word[-1]}</w>"]
        while len(pieces) > 1:  # apply the existing merges, lowest rank first
            rank, i = min((ranks.get(p, len(ranks)), i) for i, p in enumerate(pairwise(pieces)))
            if rank == len(ranks):
                break
            pieces[i : i + 2] = [pieces[i] + pieces[i + 1]]
        merged = pieces[0]
        for piece in pieces[1:]:
            ranks[(merged, piece)] = len(ranks)
            merged += piece
            tokens.append(merged)
    vocab = {token: i for i, token in enumerate(dict.fromkeys([*tokens, BOS, EOS]))}
    return vocab, list(ranks)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Third-party constructors (transformers, diffusers) draw their random initial weights
    from torch's global CPU generator and take none of their own; inside this block that
    generator is seeded, and on leaving its state is restored, so the caller's RNG stream
    is the same as if nothing had been built."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def tiny_tokenizer(model_max_length: int = 77) -> Any:
    """A ``CLIPTokenizer`` over :func:`_byte_bpe`, built in memory (no files, no download)."""
    from transformers import CLIPTokenizer

    vocab, merges = _byte_bpe()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def _text_encoder(tokenizer: Any, max_length: int, *, projection: bool = False) -> Any:
    """A two-layer CLIP text encoder of width 32 (with a 32-wide projection, SDXL's second)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=max_length,
        projection_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _unet_vae_scheduler(image_size: int, text_width: int, **unet_extra: Any) -> dict[str, Any]:
    """UNet channels (32, 64), cross-attention at both levels (so the text condition has a
    real say even at random init); a two-level KL autoencoder (latents at half the image
    size); DDIM with Stable Diffusion's noise schedule."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=image_size // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=text_width,
        attention_head_dim=8,
        norm_num_groups=32,
        **unet_extra,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=image_size,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {"unet": unet, "vae": vae, "scheduler": scheduler}


def tiny_stable_diffusion(seed: int = 0, *, image_size: int = 32, max_length: int = 77) -> Any:
    """A random ``StableDiffusionPipeline`` making ``image_size`` square images in well under 2 s.

    ``seed`` fixes the random weights, so two calls give the same pipeline.
    """
    from diffusers import StableDiffusionPipeline

    tokenizer = tiny_tokenizer(max_length)
    with _seeded(seed):
        pipeline = StableDiffusionPipeline(
            text_encoder=_text_encoder(tokenizer, max_length),
            tokenizer=tokenizer,
            **_unet_vae_scheduler(image_size, 32),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def tiny_stable_diffusion_xl(seed: int = 0, *, image_size: int = 32) -> Any:
    """A random ``StableDiffusionXLPipeline``: two text encoders (their penultimate states
    concatenated, width 64), the second's pooled projection and the image size as extra
    UNet conditions, as in SDXL."""
    from diffusers import StableDiffusionXLPipeline

    tokenizer = tiny_tokenizer()
    with _seeded(seed):
        pipeline = StableDiffusionXLPipeline(
            text_encoder=_text_encoder(tokenizer, 77),
            text_encoder_2=_text_encoder(tokenizer, 77, projection=True),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            **_unet_vae_scheduler(
                image_size,
                64,
                addition_embed_type="text_time",
                addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=6 * 8 + 32,
            ),
            add_watermarker=False,
        )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def tiny_causal_lm(seed: int = 0) -> tuple[Any, Any]:
    """A random two-layer ``LlamaForCausalLM`` (width 32, grouped-query attention), tokenizer.

    The tokenizer is :func:`tiny_tokenizer` (byte-level BPE with start/end tokens),
    which a causal LM reads as well as CLIP does.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(model_max_length=512)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with _seeded(seed):
        model = LlamaForCausalLM(config)
    return model.eval(), tokenizer
