"""Tiny, randomly initialised video MLLMs with real Hugging Face processors.

They let the whole pipeline (and the tests) run anywhere without downloading a model: each builds in
about a second on a CPU. Their answers are noise; every response they produce is marked ``smoke``.
The recipe (tokenizer trained on the spot, small configs, real processors) follows
``huggingface/trl:scripts/generate_tiny_models``; the settings per family are in
docs/dependencies notes of the project.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmaip_core import stable_hash

__all__ = ["FAMILIES", "TinyFamily", "build_tiny_model", "tiny_model_dir"]

TinyFamily = Literal["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video"]
BUILDER_VERSION = 1

_CORPUS = [
    "What colour is the circle? The red square moves left across a grey background.",
    "In which direction does the blue triangle move? It moves up, then down, then right.",
    "A green shape and a yellow shape appear one after the other in the video.",
    "user assistant system video image answer question",
]

_TEMPLATE = (
    "{% for m in messages %}{{ start }}{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'video' %}{{ video }}{% elif c['type'] == 'image' %}{{ image }}"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}{{ end }}\n{% endfor %}"
    "{% if add_generation_prompt %}{{ start }}assistant\n{% endif %}"
)


def _template(start: str, end: str, video: str, image: str) -> str:
    return (
        _TEMPLATE.replace("{{ start }}", start)
        .replace("{{ end }}", end)
        .replace("{{ video }}", video)
        .replace("{{ image }}", image)
    )


def _tokenizer(special: list[str], eos: str, pad: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 10, trainer)
    others = [s for s in special if s not in (eos, pad)]
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad, additional_special_tokens=others)


def _text_config(tokenizer: Any, **extra: Any) -> dict[str, Any]:
    return {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        **extra,
    }


_QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
_QWEN_TEMPLATE = (
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|><|video_pad|><|vision_end|>",
    "<|vision_start|><|image_pad|><|vision_end|>",
)


@dataclass(frozen=True)
class _QwenVariant:
    """What sets one Qwen-VL generation's tiny model apart from the others."""

    classes: tuple[str, str, str]
    """transformers' config, model and processor classes."""
    vision: dict[str, Any]
    """Its vision settings beyond depth, heads and the merge sizes."""
    patch: int = 14
    pixels: dict[str, int] = field(default_factory=lambda: {"shortest_edge": 56 * 56, "longest_edge": 112 * 112})
    video_pixels: dict[str, int] | None = None
    """The video processor's pixel budget (None: the image processor's)."""
    rope: dict[str, Any] = field(default_factory=dict)
    """Its rope parameters beyond the shared ones."""
    text: dict[str, Any] = field(default_factory=dict)
    """Its text settings beyond the shared ones."""
    qwen3: bool = False
    """Qwen3's video processor: a pixel budget over t x h x w."""


_QWEN_VARIANTS = {
    "qwen2-vl": _QwenVariant(
        ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor"),
        {"embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2, "patch_size": 14},
    ),
    "qwen2.5-vl": _QwenVariant(
        ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"),
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "out_hidden_size": 64,
            "patch_size": 14,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
    ),
    "qwen3-vl": _QwenVariant(
        ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor"),
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "out_hidden_size": 64,
            "patch_size": 16,
            "deepstack_visual_indexes": [0],
            "num_position_embeddings": 64,
        },
        patch=16,
        pixels={"shortest_edge": 64 * 64, "longest_edge": 128 * 128},
        video_pixels={"shortest_edge": 64 * 64 * 8, "longest_edge": 128 * 128 * 8},
        rope={"mrope_interleaved": True},  # interleaved M-RoPE
        text={"head_dim": 16},
        qwen3=True,
    ),
}


def _qwen(out: Path, family: str) -> None:
    """Qwen2-VL, Qwen2.5-VL and Qwen3-VL share tokens, template and most of their configuration."""
    import transformers

    variant = _QWEN_VARIANTS[family]
    tokenizer = _tokenizer(_QWEN_SPECIAL, eos="<|im_end|>", pad="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _QWEN_SPECIAL}
    rope = {"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3], **variant.rope}
    text = _text_config(tokenizer, rope_parameters=rope, **variant.text)
    config_cls, model_cls, processor_cls = (getattr(transformers, n) for n in variant.classes)
    config = config_cls(
        text_config=text,
        vision_config={"depth": 2, "num_heads": 2, "spatial_merge_size": 2, "temporal_patch_size": 2, **variant.vision},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    processor = processor_cls(
        **_qwen_processors(variant), tokenizer=tokenizer, chat_template=_template(*_QWEN_TEMPLATE)
    )
    model_cls(config).save_pretrained(out)
    processor.save_pretrained(out)


def _qwen_processors(variant: _QwenVariant) -> dict[str, Any]:
    """The image and video processors of a Qwen-VL generation."""
    from transformers.models.qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    sizes: dict[str, Any] = {"patch_size": variant.patch, "merge_size": 2, "temporal_patch_size": 2}
    video_pixels = variant.video_pixels or variant.pixels
    video: Qwen2VLVideoProcessor | Qwen3VLVideoProcessor
    if variant.qwen3:
        video = Qwen3VLVideoProcessor(**sizes, size=video_pixels)
    else:
        video = Qwen2VLVideoProcessor(**sizes, size=video_pixels, cap_pixels_per_frame=True)
    return {"image_processor": Qwen2VLImageProcessor(**sizes, size=variant.pixels), "video_processor": video}


def _llava_onevision(out: Path) -> None:
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor
    from transformers.models.llava_onevision import LlavaOnevisionImageProcessor, LlavaOnevisionVideoProcessor

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tokenizer = _tokenizer(special, eos="<|im_end|>", pad="<|endoftext|>")
    config = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 8,
        },
        text_config={"model_type": "qwen2", **_text_config(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=[[64, 64]],
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    square = {"height": 64, "width": 64}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=square, image_grid_pinpoints=[[64, 64]]),
        video_processor=LlavaOnevisionVideoProcessor(size=square),
        tokenizer=tokenizer,
        num_image_tokens=64,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=_template("<|im_start|>", "<|im_end|>", "<video>", "<image>"),
    )
    LlavaOnevisionForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)


def _llava_next_video(out: Path) -> None:
    from transformers import LlavaNextVideoConfig, LlavaNextVideoForConditionalGeneration, LlavaNextVideoProcessor
    from transformers.models.llava_next import LlavaNextImageProcessor
    from transformers.models.llava_next_video import LlavaNextVideoVideoProcessor

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tokenizer = _tokenizer(special, eos="<|im_end|>", pad="<|endoftext|>")
    config = LlavaNextVideoConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 8,
            "projection_dim": 32,
        },
        text_config={"model_type": "llama", **_text_config(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=[[64, 64]],
        tie_word_embeddings=False,
    )
    square = {"height": 64, "width": 64}
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size=square, crop_size=square),
        image_processor=LlavaNextImageProcessor(size=square, crop_size=square, image_grid_pinpoints=[[64, 64]]),
        tokenizer=tokenizer,
        patch_size=8,
        num_additional_image_tokens=1,  # CLIP's CLS token
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=_template("<|im_start|>", "<|im_end|>", "<video>", "<image>"),
    )
    LlavaNextVideoForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)


FAMILIES: dict[str, Callable[[Path], None]] = {
    "qwen2-vl": lambda out: _qwen(out, "qwen2-vl"),
    "qwen2.5-vl": lambda out: _qwen(out, "qwen2.5-vl"),
    "qwen3-vl": lambda out: _qwen(out, "qwen3-vl"),
    "llava-onevision": _llava_onevision,
    "llava-next-video": _llava_next_video,
}


def tiny_model_dir(family: str, seed: int, root: str | Path) -> Path:
    """Where the tiny model of ``family`` and ``seed`` lives under ``root``."""
    return Path(root) / f"{family}-seed{seed}-{stable_hash([family, seed, BUILDER_VERSION])[:8]}"


def build_tiny_model(family: str, seed: int = 0, root: str | Path | None = None) -> Path:
    """Build (once) and return the folder of a tiny random model of ``family`` with its processor.

    ``root`` defaults to ``$MMAIP_CACHE_DIR/tiny-models`` (``~/.cache/mmaip/tiny-models``). The folder
    is written to a temporary name and renamed, so a half-built model is never used.
    """
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny model family '{family}'; choose one of: {', '.join(FAMILIES)}")
    if root is None:
        base = os.environ.get("MMAIP_CACHE_DIR") or str(Path.home() / ".cache" / "mmaip")
        root = Path(base) / "tiny-models"
    target = tiny_model_dir(family, seed, root)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            FAMILIES[family](tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # built concurrently by another process
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
