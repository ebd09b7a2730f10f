"""Moved to :mod:`mmaip_core.train.weights`; this module keeps the imports documented before the move working."""

from mmaip_core.train.weights import *  # noqa: F403
from mmaip_core.train.weights import __all__ as __all__
