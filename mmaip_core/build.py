"""Moved to :mod:`mmaip_core.stages.build`; this module keeps the imports documented before the move working."""

from mmaip_core.stages.build import *  # noqa: F403
from mmaip_core.stages.build import __all__ as __all__
