"""pmarket: a prediction-market exchange."""

# The engine's build is chosen before anything can import an engine module: its
# mypyc-compiled core when that is present and current, its sources otherwise
# (``pmarket.runtime.compiled``; ``mode`` says which runs).
from pmarket.runtime import compiled as _compiled

_compiled.activate()

__version__ = "0.1.0"
