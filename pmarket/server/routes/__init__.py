"""The API's routes, one module per resource (auth, account, orders, heartbeat,
markets, events, admin, system); ``ROUTERS`` lists them in the order they are mounted."""

from . import account, admin, auth, events, heartbeat, markets, orders, system

ROUTERS = (auth.router, account.router, orders.router, heartbeat.router, markets.router,
           events.router, admin.router, system.router)

__all__ = ["ROUTERS"]
