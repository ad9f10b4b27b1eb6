"""The API's routes, one module per resource (auth, account, orders, heartbeat,
markets, events, API keys, admin, system); ``ROUTERS`` lists them in the order they are
mounted."""

from . import account, admin, auth, events, heartbeat, keys, markets, orders, system

ROUTERS = (auth.router, account.router, orders.router, heartbeat.router, markets.router,
           events.router, keys.router, admin.router, system.router)
