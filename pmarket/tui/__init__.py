"""pmarket's trading terminal (``pmarket tui``): a Textual app over the public API.

It talks to a server only through ``pmarket.client`` (HTTP and the WebSocket), so it
works against any pmarket deployment; ``embedded`` starts one in-process on request.
"""

from pmarket.tui.app import TradingApp

__all__ = ["TradingApp"]
