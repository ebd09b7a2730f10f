"""Training: the Iter-W2S-RLAIF round loop over a trainer plugin (see :mod:`mmaip_core.train.loop`)."""

from mmaip_core.train.loop import TrainProgress, run_training
from mmaip_core.train.pairs import read_train_pairs, round_shard

__all__ = ["TrainProgress", "read_train_pairs", "round_shard", "run_training"]
