"""Moved to :mod:`mmaip_core.testbeds.shapesqa`; this module keeps the imports documented before the move working."""

from mmaip_core.testbeds.shapesqa import *  # noqa: F403
from mmaip_core.testbeds.shapesqa import __all__ as __all__
