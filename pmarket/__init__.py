"""pmarket: a prediction-market exchange."""

__version__ = "0.1.0"
