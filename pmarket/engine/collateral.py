"""Money in and out, and the operations that turn cash into share bundles and back.

Every operation here moves exactly as much cash between an account and an event's
collateral as the shares it creates or burns will pay out under any resolution:
split / merge of a market (cash <-> YES + NO), split / merge of an event
(cash <-> one YES of every outcome) and convert (k NOs -> YES of every other outcome
plus $(k - 1)). Deposits stop at the exchange-wide ``MAX_TOTAL_MONEY``; nothing else
brings money in, so no amount anywhere in the engine can outgrow it.

Handlers are functions of the engine (see engine.py); amounts and quantities a client
controls are read untyped and validated before use.
"""

from __future__ import annotations

from typing import Any

from . import commands as c
from .events import LedgerEntry, Reason
from .limits import id_problem
from .model import Event, Market, Position
from .state import State
from .units import MAX_AMOUNT, MAX_QUANTITY, MAX_TOTAL_MONEY, SCALE, format_money

AmountCommand = c.Deposit | c.Withdraw
QuantityCommand = c.Split | c.Merge | c.SplitEvent | c.MergeEvent | c.Convert


def ledger(eng: State, user_id: int, kind: str, amount: int, event_id: int | None = None,
           market_id: int | None = None, quantity: int = 0) -> None:
    """Record cash or shares crossing an account's boundary other than by a trade."""
    eng._out.append(LedgerEntry(user_id, kind, amount, event_id, market_id, quantity,
                                eng.now_ms))


def _valid_amount(eng: State, cmd: AmountCommand, command: str) -> bool:
    raw: Any = cmd
    amount: object = raw.amount
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        eng._reject(cmd.user_id, command, Reason.INVALID_AMOUNT,
                    f"amount must be more than 0 and at most {format_money(MAX_AMOUNT)}, "
                    f"in steps of 0.0001")
        return False
    return True


def _valid_quantity(eng: State, cmd: QuantityCommand, command: str) -> bool:
    raw: Any = cmd
    qty: object = raw.quantity
    if type(qty) is not int or not 0 < qty <= MAX_QUANTITY:
        eng._reject(cmd.user_id, command, Reason.INVALID_QUANTITY,
                    f"quantity must be a whole number from 1 to {MAX_QUANTITY}")
        return False
    return True


# --- the boundary --------------------------------------------------------------------


def deposit(eng: State, cmd: c.Deposit) -> None:
    """Credit cash from outside the exchange, as long as the user then holds at most the
    command's ``max_balance`` (the per-account limit) and the exchange as a whole at most
    ``MAX_TOTAL_MONEY`` (an overflow guard: no amount in it can outgrow a BIGINT)."""
    problem = id_problem(cmd.user_id)
    if problem is not None:  # a deposit is what opens an account: its id must be storable
        eng._reject(None, "Deposit", Reason.INVALID_FIELD, f"user_id {problem}")
        return
    if not _valid_amount(eng, cmd, "Deposit"):
        return
    if eng.treasury.held + cmd.amount > MAX_TOTAL_MONEY:
        eng._reject(cmd.user_id, "Deposit", Reason.EXCHANGE_MONEY_LIMIT,
                    f"deposit of {format_money(cmd.amount)} would take the money held by "
                    f"the exchange past its limit of {format_money(MAX_TOTAL_MONEY)}")
        return
    acct = eng.accounts.get(cmd.user_id)
    held = acct.available + acct.reserved if acct is not None else 0
    if cmd.max_balance and held + cmd.amount > cmd.max_balance:
        eng._reject(cmd.user_id, "Deposit", Reason.BALANCE_LIMIT,
                    f"deposit of {format_money(cmd.amount)} would take your cash to "
                    f"{format_money(held + cmd.amount)}, past the limit of "
                    f"{format_money(cmd.max_balance)} per account")
        return
    acct = eng._account(cmd.user_id)
    acct.available += cmd.amount
    eng.treasury.deposits += cmd.amount
    ledger(eng, cmd.user_id, "deposit", cmd.amount)
    eng._touch_account(acct)


def withdraw(eng: State, cmd: c.Withdraw) -> None:
    """Pay available cash out of the exchange."""
    if not _valid_amount(eng, cmd, "Withdraw"):
        return
    acct = eng.accounts.get(cmd.user_id)
    available = acct.available if acct else 0
    if acct is None or available < cmd.amount:
        eng._reject(cmd.user_id, "Withdraw", Reason.INSUFFICIENT_CASH,
                    f"withdrawal of {format_money(cmd.amount)} exceeds the "
                    f"{format_money(available)} available")
        return
    acct.available -= cmd.amount
    eng.treasury.withdrawals += cmd.amount
    ledger(eng, cmd.user_id, "withdrawal", -cmd.amount)
    eng._touch_account(acct)


# --- market level --------------------------------------------------------------------


def _tradable_market(eng: State, cmd: c.Split | c.Merge, command: str) -> Market | None:
    market = eng.markets.get(cmd.market_id)
    if market is None:
        eng._reject(cmd.user_id, command, Reason.UNKNOWN_MARKET,
                    f"market {cmd.market_id} does not exist")
        return None
    if market.status == "resolved":
        eng._reject(cmd.user_id, command, Reason.MARKET_NOT_ACTIVE,
                    f"market {market.id} is resolved")
        return None
    return market


def split(eng: State, cmd: c.Split) -> None:
    """$1 per pair -> one YES and one NO of a market."""
    market = _tradable_market(eng, cmd, "Split")
    if market is None or not _valid_quantity(eng, cmd, "Split"):
        return
    cost = cmd.quantity * SCALE
    if not _has_cash(eng, cmd, "Split", cost):
        return
    acct = eng.accounts[cmd.user_id]
    pos = eng._position(acct, market)
    acct.available -= cost
    pos.yes += cmd.quantity
    pos.no += cmd.quantity
    market.event.collateral += cost
    ledger(eng, cmd.user_id, "split", -cost, market.event.id, market.id, cmd.quantity)
    eng._touch_account(acct)
    eng._touch_position(pos)


def merge(eng: State, cmd: c.Merge) -> None:
    """One YES and one NO of a market -> $1 per pair."""
    market = _tradable_market(eng, cmd, "Merge")
    if market is None or not _valid_quantity(eng, cmd, "Merge"):
        return
    acct = eng.accounts.get(cmd.user_id)
    pos = acct.positions.get(market.id) if acct else None
    q = cmd.quantity
    if (acct is None or pos is None or pos.yes - pos.yes_reserved < q
            or pos.no - pos.no_reserved < q):
        eng._reject(cmd.user_id, "Merge", Reason.INSUFFICIENT_SHARES,
                    f"merging {q} pairs needs {q} free YES and {q} free NO shares")
        return
    pos.yes -= q
    pos.no -= q
    acct.available += q * SCALE
    market.event.collateral -= q * SCALE
    ledger(eng, cmd.user_id, "merge", q * SCALE, market.event.id, market.id, q)
    eng._touch_account(acct)
    eng._touch_position(pos)


def _has_cash(eng: State, cmd: c.Split | c.SplitEvent, command: str, cost: int) -> bool:
    acct = eng.accounts.get(cmd.user_id)
    available = acct.available if acct else 0
    if available < cost:
        eng._reject(cmd.user_id, command, Reason.INSUFFICIENT_CASH,
                    f"needs {format_money(cost)} of cash, {format_money(available)} available")
        return False
    return True


# --- event level ---------------------------------------------------------------------


def _multi_event(eng: State, cmd: c.SplitEvent | c.MergeEvent | c.Convert,
                 command: str) -> Event | None:
    event = eng.events.get(cmd.event_id)
    if event is None:
        eng._reject(cmd.user_id, command, Reason.UNKNOWN_EVENT,
                    f"event {cmd.event_id} does not exist")
        return None
    if not event.is_multi:
        eng._reject(cmd.user_id, command, Reason.SINGLE_OUTCOME_EVENT,
                    f"event {event.id} has a single outcome: use the market's "
                    "split and merge")
        return None
    if event.status == "resolved":
        eng._reject(cmd.user_id, command, Reason.EVENT_NOT_ACTIVE,
                    f"event {event.id} is resolved")
        return None
    if not _valid_quantity(eng, cmd, command):
        return None
    return event


def split_event(eng: State, cmd: c.SplitEvent) -> None:
    """$1 per set -> one YES of every outcome of an event."""
    event = _multi_event(eng, cmd, "SplitEvent")
    if event is None:
        return
    cost = cmd.quantity * SCALE
    if not _has_cash(eng, cmd, "SplitEvent", cost):
        return
    acct = eng.accounts[cmd.user_id]
    acct.available -= cost
    for market in event.markets:
        pos = eng._position(acct, market)
        pos.yes += cmd.quantity
        eng._touch_position(pos)
    event.collateral += cost
    ledger(eng, cmd.user_id, "split_event", -cost, event.id, None, cmd.quantity)
    eng._touch_account(acct)


def _all_free(found: list[Position | None], q: int, yes: bool) -> list[Position] | None:
    """The positions if every one exists and has ``q`` free YES (or NO) shares."""
    held: list[Position] = []
    for p in found:
        if p is None or (p.yes - p.yes_reserved if yes else p.no - p.no_reserved) < q:
            return None
        held.append(p)
    return held


def merge_event(eng: State, cmd: c.MergeEvent) -> None:
    """One YES of every outcome of an event -> $1 per set."""
    event = _multi_event(eng, cmd, "MergeEvent")
    if event is None:
        return
    acct = eng.accounts.get(cmd.user_id)
    q = cmd.quantity
    held = None if acct is None else _all_free(
        [acct.positions.get(m.id) for m in event.markets], q, True)
    if acct is None or held is None:
        eng._reject(cmd.user_id, "MergeEvent", Reason.INSUFFICIENT_SHARES,
                    f"merging {q} complete sets needs {q} free YES of every outcome")
        return
    for pos in held:
        pos.yes -= q
        eng._touch_position(pos)
    acct.available += q * SCALE
    event.collateral -= q * SCALE
    ledger(eng, cmd.user_id, "merge_event", q * SCALE, event.id, None, q)
    eng._touch_account(acct)


def convert(eng: State, cmd: c.Convert) -> None:
    """NO of each chosen outcome -> YES of every other outcome, plus $(k - 1)."""
    event = _multi_event(eng, cmd, "Convert")
    if event is None:
        return
    chosen = cmd.outcome_ids
    ids = {m.id for m in event.markets}
    if not chosen or len(set(chosen)) != len(chosen) or not set(chosen) <= ids:
        eng._reject(cmd.user_id, "Convert", Reason.UNKNOWN_OUTCOME,
                    f"outcome_ids must be distinct outcomes of event {event.id}")
        return
    acct = eng.accounts.get(cmd.user_id)
    q = cmd.quantity
    sources = None if acct is None else _all_free(
        [acct.positions.get(i) for i in chosen], q, False)
    if acct is None or sources is None:
        eng._reject(cmd.user_id, "Convert", Reason.INSUFFICIENT_SHARES,
                    f"converting needs {q} free NO of every chosen outcome")
        return
    for pos in sources:
        pos.no -= q
        eng._touch_position(pos)
    for market in event.markets:
        if market.id not in chosen:
            pos = eng._position(acct, market)
            pos.yes += q
            eng._touch_position(pos)
    released = (len(chosen) - 1) * q * SCALE
    acct.available += released
    event.collateral -= released
    ledger(eng, cmd.user_id, "convert", released, event.id, None, q)
    eng._touch_account(acct)
