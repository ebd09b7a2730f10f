"""The zoo: response generators. ``hf`` runs any Hugging Face video MLLM, ``vllm`` the same with vLLM's
offline engine; ``openai`` and ``anthropic`` call APIs; ``smoke`` runs tiny random models built on the fly, so
the pipeline runs anywhere (their answers are noise and are marked so)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mmaip_core import GeneratorSpec, PluginOptions, hookimpl
from mmaip_plugins.zoo.anthropic import AnthropicGenerator, AnthropicGeneratorOptions
from mmaip_plugins.zoo.hf import GenerationParams, HFGenerator, HFOptions
from mmaip_plugins.zoo.openai import OpenAIGenerator, OpenAIGeneratorOptions
from mmaip_plugins.zoo.tiny import BUILDER_VERSION, TinyFamily, build_tiny_model
from mmaip_plugins.zoo.vllm import VLLMGenerator, VLLMOptions

__all__ = ["SmokeOptions", "smoke_generator"]


class SmokeOptions(PluginOptions):
    family: TinyFamily = Field(default="qwen2-vl", description="Architecture of the tiny model.")
    seed: int = Field(default=0, description="Seed of the random weights: different seeds, different models.")
    cache_dir: Path | None = Field(default=None, description="Where tiny models are built (default: cache).")
    batch_size: int = Field(default=8, ge=1, le=1024)
    params: GenerationParams = Field(
        default_factory=lambda: GenerationParams(temperature=1.0, max_new_tokens=16),
        description="Sampling parameters.",
    )


def smoke_generator(options: SmokeOptions) -> HFGenerator:
    """An ``hf`` generator over a tiny random model of the chosen family and seed."""
    folder = build_tiny_model(options.family, options.seed, options.cache_dir)
    hf = HFOptions(model=str(folder), device="cpu", batch_size=options.batch_size, params=options.params)
    return HFGenerator(hf, smoke=True, model_id=f"smoke/{options.family}-seed{options.seed}-v{BUILDER_VERSION}")


@hookimpl
def mmaip_response_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec(
            name="hf",
            description="local or hub Hugging Face video MLLM with its own processor and chat template",
            options=HFOptions,
            factory=HFGenerator,
        ),
        GeneratorSpec(
            name="vllm",
            description="Hugging Face video MLLM on vLLM's offline engine (needs mmaip[vllm] and a GPU)",
            options=VLLMOptions,
            factory=VLLMGenerator,
        ),
        GeneratorSpec(
            name="openai",
            description="any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang); frames as images",
            options=OpenAIGeneratorOptions,
            factory=OpenAIGenerator,
        ),
        GeneratorSpec(
            name="anthropic",
            description="Claude models through the Anthropic Messages API; frames as image blocks",
            options=AnthropicGeneratorOptions,
            factory=AnthropicGenerator,
        ),
        GeneratorSpec(
            name="smoke",
            description="tiny random-initialised local model built on the fly (answers are noise)",
            options=SmokeOptions,
            factory=smoke_generator,
        ),
    ]
