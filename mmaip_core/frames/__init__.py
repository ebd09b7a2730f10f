"""The frame layer: decoding backends, samplers' input, the content-addressed frame cache."""

from mmaip_core.frames.cache import FrameCache, default_cache_dir
from mmaip_core.frames.decoders import BACKENDS, DecodeStats, decode, decode_stats
from mmaip_core.frames.loader import MAX_FRAMES, MAX_SIDE, FrameLoader, FrameSettings, resize_max_side

__all__ = [
    "BACKENDS",
    "MAX_FRAMES",
    "MAX_SIDE",
    "DecodeStats",
    "FrameCache",
    "FrameLoader",
    "FrameSettings",
    "decode",
    "decode_stats",
    "default_cache_dir",
    "resize_max_side",
]
