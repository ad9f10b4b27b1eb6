"""The terminal's screens: login, events, market (with the order ticket), orders,
portfolio, admin, help, and the small dialogs they share."""
