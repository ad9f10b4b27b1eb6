"""Money in and out, and the operations that turn cash into share bundles and back.

Every operation here moves exactly as much cash between an account and an event's
collateral as the shares it creates or burns will pay out under any resolution:
split / merge of a market (cash <-> YES + NO), split / merge of an event
(cash <-> one YES of every outcome) and convert (k NOs -> YES of every other outcome
plus $(k - 1)).
"""

from __future__ import annotations

from .events import LEDGER, Reason
from .units import MAX_AMOUNT, MAX_QUANTITY, SCALE


class CollateralMixin:
    """Deposit, withdraw, split, merge and convert handlers of ``Engine``."""

    def _ledger(self, user_id, kind, amount, event_id=None, market_id=None, quantity=0):
        self._out.append((LEDGER, user_id, kind, amount, event_id, market_id, quantity,
                          self.now_ms))

    def _valid_amount(self, cmd, command: str) -> bool:
        amount = cmd.amount
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            self._reject(cmd.user_id, command, Reason.INVALID_AMOUNT,
                         f"amount must be a whole number of units from 1 to {MAX_AMOUNT}")
            return False
        return True

    def _valid_quantity(self, cmd, command: str) -> bool:
        qty = cmd.quantity
        if type(qty) is not int or not 0 < qty <= MAX_QUANTITY:
            self._reject(cmd.user_id, command, Reason.INVALID_QUANTITY,
                         f"quantity must be a whole number from 1 to {MAX_QUANTITY}")
            return False
        return True

    # --- the boundary --------------------------------------------------------------

    def _on_deposit(self, cmd) -> None:
        if not self._valid_amount(cmd, "Deposit"):
            return
        acct = self._account(cmd.user_id)
        acct.available += cmd.amount
        self.treasury.deposits += cmd.amount
        self._ledger(cmd.user_id, "deposit", cmd.amount)
        self._d_accounts[acct] = None

    def _on_withdraw(self, cmd) -> None:
        if not self._valid_amount(cmd, "Withdraw"):
            return
        acct = self.accounts.get(cmd.user_id)
        available = acct.available if acct else 0
        if available < cmd.amount:
            self._reject(cmd.user_id, "Withdraw", Reason.INSUFFICIENT_CASH,
                         f"withdrawal of {cmd.amount} units exceeds the {available} available")
            return
        acct.available -= cmd.amount
        self.treasury.withdrawals += cmd.amount
        self._ledger(cmd.user_id, "withdrawal", -cmd.amount)
        self._d_accounts[acct] = None

    # --- market level --------------------------------------------------------------

    def _tradable_market(self, cmd, command: str):
        market = self.markets.get(cmd.market_id)
        if market is None:
            self._reject(cmd.user_id, command, Reason.UNKNOWN_MARKET,
                         f"market {cmd.market_id} does not exist")
            return None
        if market.status == "resolved":
            self._reject(cmd.user_id, command, Reason.MARKET_NOT_ACTIVE,
                         f"market {market.id} is resolved")
            return None
        return market

    def _on_split(self, cmd) -> None:
        market = self._tradable_market(cmd, "Split")
        if market is None or not self._valid_quantity(cmd, "Split"):
            return
        cost = cmd.quantity * SCALE
        if not self._has_cash(cmd, "Split", cost):
            return
        acct = self.accounts[cmd.user_id]
        pos = self._position(acct, market)
        acct.available -= cost
        pos.yes += cmd.quantity
        pos.no += cmd.quantity
        market.event.collateral += cost
        self._ledger(cmd.user_id, "split", -cost, market.event.id, market.id, cmd.quantity)
        self._d_accounts[acct] = None
        self._d_positions[pos] = None

    def _on_merge(self, cmd) -> None:
        market = self._tradable_market(cmd, "Merge")
        if market is None or not self._valid_quantity(cmd, "Merge"):
            return
        acct = self.accounts.get(cmd.user_id)
        pos = acct.positions.get(market.id) if acct else None
        q = cmd.quantity
        if pos is None or pos.yes - pos.yes_reserved < q or pos.no - pos.no_reserved < q:
            self._reject(cmd.user_id, "Merge", Reason.INSUFFICIENT_SHARES,
                         f"merging {q} pairs needs {q} free YES and {q} free NO shares")
            return
        pos.yes -= q
        pos.no -= q
        acct.available += q * SCALE
        market.event.collateral -= q * SCALE
        self._ledger(cmd.user_id, "merge", q * SCALE, market.event.id, market.id, q)
        self._d_accounts[acct] = None
        self._d_positions[pos] = None

    def _has_cash(self, cmd, command: str, cost: int) -> bool:
        acct = self.accounts.get(cmd.user_id)
        available = acct.available if acct else 0
        if available < cost:
            self._reject(cmd.user_id, command, Reason.INSUFFICIENT_CASH,
                         f"needs {cost} units of cash, {available} available")
            return False
        return True

    # --- event level ---------------------------------------------------------------

    def _multi_event(self, cmd, command: str):
        event = self.events.get(cmd.event_id)
        if event is None:
            self._reject(cmd.user_id, command, Reason.UNKNOWN_EVENT,
                         f"event {cmd.event_id} does not exist")
            return None
        if not event.is_multi:
            self._reject(cmd.user_id, command, Reason.SINGLE_OUTCOME_EVENT,
                         f"event {event.id} has a single outcome: use the market's "
                         "split and merge")
            return None
        if event.status == "resolved":
            self._reject(cmd.user_id, command, Reason.EVENT_NOT_ACTIVE,
                         f"event {event.id} is resolved")
            return None
        if not self._valid_quantity(cmd, command):
            return None
        return event

    def _on_split_event(self, cmd) -> None:
        event = self._multi_event(cmd, "SplitEvent")
        if event is None:
            return
        cost = cmd.quantity * SCALE
        if not self._has_cash(cmd, "SplitEvent", cost):
            return
        acct = self.accounts[cmd.user_id]
        acct.available -= cost
        for market in event.markets:
            pos = self._position(acct, market)
            pos.yes += cmd.quantity
            self._d_positions[pos] = None
        event.collateral += cost
        self._ledger(cmd.user_id, "split_event", -cost, event.id, None, cmd.quantity)
        self._d_accounts[acct] = None

    def _on_merge_event(self, cmd) -> None:
        event = self._multi_event(cmd, "MergeEvent")
        if event is None:
            return
        acct = self.accounts.get(cmd.user_id)
        q = cmd.quantity
        positions = [acct.positions.get(m.id) for m in event.markets] if acct else [None]
        if any(p is None or p.yes - p.yes_reserved < q for p in positions):
            self._reject(cmd.user_id, "MergeEvent", Reason.INSUFFICIENT_SHARES,
                         f"merging {q} complete sets needs {q} free YES of every outcome")
            return
        for pos in positions:
            pos.yes -= q
            self._d_positions[pos] = None
        acct.available += q * SCALE
        event.collateral -= q * SCALE
        self._ledger(cmd.user_id, "merge_event", q * SCALE, event.id, None, q)
        self._d_accounts[acct] = None

    def _on_convert(self, cmd) -> None:
        event = self._multi_event(cmd, "Convert")
        if event is None:
            return
        chosen = cmd.outcome_ids
        ids = {m.id for m in event.markets}
        if not chosen or len(set(chosen)) != len(chosen) or not set(chosen) <= ids:
            self._reject(cmd.user_id, "Convert", Reason.UNKNOWN_OUTCOME,
                         f"outcome_ids must be distinct outcomes of event {event.id}")
            return
        acct = self.accounts.get(cmd.user_id)
        q = cmd.quantity
        sources = [acct.positions.get(i) for i in chosen] if acct else [None]
        if any(p is None or p.no - p.no_reserved < q for p in sources):
            self._reject(cmd.user_id, "Convert", Reason.INSUFFICIENT_SHARES,
                         f"converting needs {q} free NO of every chosen outcome")
            return
        for pos in sources:
            pos.no -= q
            self._d_positions[pos] = None
        for market in event.markets:
            if market.id not in chosen:
                pos = self._position(acct, market)
                pos.yes += q
                self._d_positions[pos] = None
        released = (len(chosen) - 1) * q * SCALE
        acct.available += released
        event.collateral -= released
        self._ledger(cmd.user_id, "convert", released, event.id, None, q)
        self._d_accounts[acct] = None
