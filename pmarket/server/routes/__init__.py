"""The API's routes, one module per resource (auth, account, orders, markets, events,
API keys, admin, system); ``ROUTERS`` lists them in the order they are mounted."""

from . import account, admin, auth, events, keys, markets, orders, system

ROUTERS = (auth.router, account.router, orders.router, markets.router, events.router,
           keys.router, admin.router, system.router)

__all__ = ["ROUTERS"]
