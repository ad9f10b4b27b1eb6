"""Placing, matching, modifying, cancelling and expiring orders.

Matching is price-time priority on the canonical YES book; every cross settles at the
resting (maker) order's price as one of four trades (DESIGN §1):

    bid \\ ask   sell YES        buy NO
    buy YES     transfer_yes    mint   (+$1 collateral per share)
    sell NO     merge (-$1)     transfer_no

Each side settles independently of the other, which keeps the loop short: a YES buyer
pays P, a NO seller receives 1 - P, a YES seller receives P, a NO buyer pays 1 - P.
Reservations are exact: an open buy holds ``price x remaining`` cash, an open sell
``remaining`` shares; a fill at a better price returns the difference at once.

Fees (``units.taker_fee``, at the event's ``fee_rate``) are paid by the taker of each
fill, makers pay nothing: a crossing buy holds its worst-case fee with its cash while it
takes and gets the unused part back when matching ends (``_take``); a sell's fee comes
out of each fill's proceeds. Every fee goes to the treasury's fee account.

This is the hot path, compiled with mypyc: handlers are functions of the engine (direct
native calls), command fields a client controls are read untyped and validated before
use, and enum members are bound once as module constants. The input limits
(``limits``: client_order_id, expiry range) are checked only when the optional field is
present, so an ordinary order pays nothing for them.
"""

from __future__ import annotations

import heapq
from enum import Enum
from typing import Final

from . import commands as c
from .commands import OrderType, Outcome, SelfTrade, Side, TimeInForce
from .events import BatchItem, Duplicate, Fill, Reason
from .limits import MAX_TIME_MS, TIME_RANGE, client_order_id_problem
from .model import (
    BUY_NO,
    BUY_YES,
    CANCELLED,
    FILLED,
    OPEN,
    PARTIALLY_FILLED,
    SELL_NO,
    SELL_YES,
    Account,
    Order,
    Position,
)
from .state import State
from .units import (
    MAX_QUANTITY,
    SCALE,
    format_money,
    price_problem,
    taker_fee,
    worst_taker_fee,
)

_GTC: Final = TimeInForce.GTC
_GTD: Final = TimeInForce.GTD
_IOC: Final = TimeInForce.IOC
_FOK: Final = TimeInForce.FOK
_BUY: Final = Side.BUY
_YES: Final = Outcome.YES
_MARKET: Final = OrderType.MARKET
_CANCEL_RESTING: Final = SelfTrade.CANCEL_RESTING


# --- placement -----------------------------------------------------------------------


def placement(cmd: c.PlaceOrder) -> tuple[object, ...]:
    """The parameters a placement is identified by, beside its client_order_id: a resend
    with the same ones is a retry (the first order answers), with others a mistake.
    Plain values (the snapshot stores them); fields are read unchecked, like ``place``'s.
    """
    return (cmd.market_id, _value(cmd.outcome), _value(cmd.side), cmd.price, cmd.quantity,
            _value(cmd.order_type), _value(cmd.tif), cmd.expires_at_ms, cmd.post_only,
            _value(cmd.stp))


def _value(field: object) -> object:
    """An enum member's value; anything else (an unchecked field) as it is."""
    return field.value if isinstance(field, Enum) else field


def place(eng: State, cmd: c.PlaceOrder) -> Order | None:
    """Validate, reserve, match and rest (or cancel) one new order.

    Returns:
        The order (new, or the existing one a repeated client_order_id names), or None
        if the placement was rejected.
    """
    uid: int = cmd.user_id
    coid: str | None = None
    coid_in: object = cmd.client_order_id
    if coid_in is not None:
        # Before the lookup and before any rejection could echo it: an id the database
        # or the bus cannot hold must not reach either (limits).
        problem = client_order_id_problem(coid_in)
        if problem is not None:
            eng._reject(uid, "PlaceOrder", Reason.INVALID_FIELD, f"client_order_id {problem}")
            return None
        assert isinstance(coid_in, str)
        coid = coid_in
        prev = eng.client_orders.get((uid, coid))
        if prev is not None:
            if prev.placement is not None and prev.placement != placement(cmd):
                eng._reject(uid, "PlaceOrder", Reason.CLIENT_ORDER_ID_REUSED,
                            f"client_order_id {coid!r} names order {prev.id}, placed with "
                            "other parameters", order_id=prev.id, coid=coid)
                return None
            eng._out.append(Duplicate(prev.id, uid, coid))
            eng._touch_order(prev)
            return prev
    market = eng.markets.get(cmd.market_id)
    if market is None:
        eng._reject(uid, "PlaceOrder", Reason.UNKNOWN_MARKET,
                    f"market {cmd.market_id} does not exist", coid=coid)
        return None
    if market.status != "active":
        eng._reject(uid, "PlaceOrder", Reason.MARKET_NOT_ACTIVE,
                    f"market {market.id} is {market.status}", coid=coid)
        return None
    limit_in: object = cmd.max_open_orders
    if type(limit_in) is not int or limit_in < 0:
        eng._reject(uid, "PlaceOrder", Reason.INVALID_FIELD,
                    f"max_open_orders must be a non-negative integer, got {limit_in!r}",
                    coid=coid)
        return None
    if limit_in:
        acct = eng.accounts.get(uid)
        if acct is not None and len(acct.orders) >= limit_in:
            eng._reject(uid, "PlaceOrder", Reason.OPEN_ORDER_LIMIT,
                        f"{len(acct.orders)} open orders already, at most {limit_in} per "
                        "account: cancel some first", coid=coid)
            return None
    qty_in: object = cmd.quantity
    if type(qty_in) is not int or not 0 < qty_in <= MAX_QUANTITY:
        eng._reject(uid, "PlaceOrder", Reason.INVALID_QUANTITY,
                    f"quantity must be a whole number from 1 to {MAX_QUANTITY}", coid=coid)
        return None
    qty: int = qty_in
    buy = cmd.side is _BUY
    yes = cmd.outcome is _YES
    action = (BUY_YES if yes else BUY_NO) if buy else (SELL_YES if yes else SELL_NO)
    tick = market.tick
    price_in: object = cmd.price
    is_market = cmd.order_type is _MARKET
    if price_in is None and is_market:
        price_in = SCALE - tick if buy else tick  # no protection: the worst price on the grid
    if type(price_in) is not int or not 0 < price_in < SCALE or price_in % tick:
        eng._reject(uid, "PlaceOrder", Reason.INVALID_PRICE,
                    price_problem(price_in, tick), coid=coid)
        return None
    price: int = price_in
    tif = cmd.tif
    if is_market:
        if tif is _GTC:
            tif = _IOC
        elif tif is _GTD:
            eng._reject(uid, "PlaceOrder", Reason.INVALID_ORDER,
                        "a market order never rests: gtd is not allowed", coid=coid)
            return None
    expires: object = cmd.expires_at_ms
    if tif is _GTD:
        if type(expires) is not int or expires <= eng.now_ms:
            eng._reject(uid, "PlaceOrder", Reason.INVALID_EXPIRY,
                        "a gtd order needs expires_at in the future", coid=coid)
            return None
        if expires > MAX_TIME_MS:
            eng._reject(uid, "PlaceOrder", Reason.INVALID_FIELD,
                        f"expires_at_ms must fall between {TIME_RANGE}", coid=coid)
            return None
    elif expires is not None:
        eng._reject(uid, "PlaceOrder", Reason.INVALID_EXPIRY,
                    "expires_at is only for gtd orders", coid=coid)
        return None
    post_only = bool(cmd.post_only)
    if post_only and (is_market or tif is _IOC or tif is _FOK):
        eng._reject(uid, "PlaceOrder", Reason.INVALID_ORDER,
                    "post_only is only for limit gtc/gtd orders", coid=coid)
        return None
    slot = (price if yes else SCALE - price) // tick
    book = market.book
    is_bid = action < SELL_YES
    crosses = slot >= book.best_ask if is_bid else slot <= book.best_bid
    acct = eng.accounts.get(uid)
    cost = 0
    fee_hold = 0
    held: Position | None = None
    if buy:
        cost = price * qty
        rate = market.event.fee_rate
        if rate and crosses:  # a taker: its worst-case fee is held with its cash
            fee_hold = worst_taker_fee(rate, qty, price)
        if acct is None or acct.available < cost + fee_hold:
            eng._reject(uid, "PlaceOrder", Reason.INSUFFICIENT_CASH,
                        f"order needs {format_money(cost + fee_hold)} of cash"
                        f"{_fee_note(fee_hold)}, "
                        f"{format_money(acct.available if acct else 0)} available", coid=coid)
            return None
    else:
        held = acct.positions.get(market.id) if acct is not None else None
        free = 0 if held is None else (held.yes - held.yes_reserved if yes
                                       else held.no - held.no_reserved)
        if free < qty:
            eng._reject(uid, "PlaceOrder", Reason.INSUFFICIENT_SHARES,
                        f"order sells {qty} {'YES' if yes else 'NO'} shares, "
                        f"{free} held and not reserved", coid=coid)
            return None
    assert acct is not None
    if post_only and crosses:
        eng._reject(uid, "PlaceOrder", Reason.POST_ONLY_WOULD_CROSS,
                    "post-only order would take liquidity", coid=coid)
        return None

    oid = eng.last_order_id = eng.last_order_id + eng.id_stride
    pos: Position | None = None
    if tif is not _FOK:
        pos = held if held is not None else acct.positions.get(market.id)
        if pos is None:
            pos = eng._position(acct, market)
    order = Order(oid, uid, market, action, price, slot, qty, eng.now_ms, acct, pos)
    if is_market:
        order.order_type = "market"
    if tif is not _GTC:
        order.tif = tif.value
        if type(expires) is int:
            order.expires_at_ms = expires
    if post_only:
        order.post_only = True
    stp = cmd.stp
    if stp is not _CANCEL_RESTING:
        order.stp = stp.value
    if coid is not None:
        order.client_order_id = coid
        order.placement = placement(cmd)
        eng.client_orders[(uid, coid)] = order
    eng._touch_order(order)
    if tif is _FOK:
        if not _fillable(order):
            order.status = CANCELLED
            order.reason = Reason.NOT_FILLED
            return order
        order.position = pos = eng._position(acct, market)
    if buy:
        acct.available -= cost
        acct.reserved += cost
        eng._touch_account(acct)
    else:
        assert pos is not None
        if yes:
            pos.yes_reserved += qty
        else:
            pos.no_reserved += qty
        eng._touch_position(pos)
    if crosses:
        _take(eng, order, fee_hold)
        _settle_taker(eng, order, tif)
    elif tif is _GTC:  # the common case, inlined: a new order that rests untouched
        book.rest(order)
        eng._touch_market(market)
        key = order.key
        eng.orders[key] = order
        acct.orders[key] = order
    else:
        _settle_taker(eng, order, tif)
    return order


def place_batch(eng: State, cmd: c.PlaceBatch) -> None:
    """Place each order of a batch on its own; a ``batch_item`` marker precedes each."""
    out = eng._out
    for index, item in enumerate(cmd.orders):
        out.append(BatchItem(index))
        if item.user_id != cmd.user_id:
            coid: object = item.client_order_id
            eng._reject(item.user_id, "PlaceOrder", Reason.INVALID_ORDER,
                        "every order of a batch must belong to the batch's user",
                        coid=coid if client_order_id_problem(coid) is None else None)
            continue
        place(eng, item)
        eng._flush()


def _settle_taker(eng: State, order: Order, tif: TimeInForce) -> None:
    """After matching: rest what is left, or cancel it (ioc, fok, market, self-trade)."""
    if not order.remaining:
        order.status = FILLED
        return
    if order.reason is not None or tif is _IOC or tif is _FOK:
        _release(eng, order)
        order.status = CANCELLED
        if order.reason is None:
            order.reason = Reason.NOT_FILLED
        return
    order.status = PARTIALLY_FILLED if order.filled else OPEN
    market = order.market
    market.book.rest(order)
    eng._touch_market(market)
    key = order.key
    eng.orders[key] = order
    order.account.orders[key] = order
    if tif is _GTD:
        expires = order.expires_at_ms
        assert expires is not None
        heapq.heappush(eng._expiry, (expires, order.id))


def _fillable(order: Order) -> bool:
    """Whether a fok order can fill completely.

    Own resting orders are never liquidity: with ``cancel_resting`` matching skips
    them (cancelling them), with ``cancel_taker`` / ``cancel_both`` it stops at the
    first one, so only what lies before it counts.
    """
    stops_at_own = order.stp != "cancel_resting"
    book = order.market.book
    need = order.remaining
    if order.is_bid:
        levels, slots = book.asks, range(book.best_ask, order.slot + 1)
    else:
        levels, slots = book.bids, range(book.best_bid, order.slot - 1, -1)
    for i in slots:
        level = levels[i]
        if level is None:
            continue
        resting = level.orders
        for k in range(level.head, len(resting)):
            o = resting[k]
            if not o.live:
                continue
            if o.user == order.user:
                if stops_at_own:
                    return False
                continue
            need -= o.remaining
            if need <= 0:
                return True
    return False


def _fee_note(fee_hold: int) -> str:
    """How much of a buy's cash need is its worst-case taker fee, for a rejection."""
    return f" ({format_money(fee_hold)} of it the worst-case fee)" if fee_hold else ""


# --- matching ------------------------------------------------------------------------


def _take(eng: State, order: Order, fee_hold: int) -> None:
    """Match a crossing order, its worst-case fee held with its cash if it buys.

    A buy taker's ``fee_hold`` (its worst case, which ``place`` checked is available)
    moves to ``reserved`` and its fees come out of it; what they did not use goes back
    to ``available`` at once: the order rests, if at all, as a maker, and makers pay
    nothing, so no fee stays reserved between commands.
    """
    if not fee_hold:
        _match(eng, order)
        return
    acct = order.account
    acct.available -= fee_hold
    acct.reserved += fee_hold
    unused = fee_hold - _match(eng, order)
    acct.reserved -= unused
    acct.available += unused
    eng._touch_account(acct)


def _match(eng: State, t: Order) -> int:
    """Trade the taker ``t`` against the opposite side while prices cross.

    Returns:
        The taker fees ``t`` paid: a buy's from its reserved cash (``_take`` held its
        worst case there), a sell's from the proceeds of each fill.
    """
    market = t.market
    book = market.book
    tick = market.tick
    now = eng.now_ms
    out = eng._out
    orders = eng.orders
    uid = t.user
    t_bid = t.is_bid
    if t_bid:
        levels, qty = book.asks, book.ask_qty
    else:
        levels, qty = book.bids, book.bid_qty
    taker_side = "buy" if t_bid else "sell"
    collateral = 0
    stride = eng.id_stride
    mid = market.id
    rate = market.event.fee_rate
    fees = 0
    t_acct = t.account
    t_buys = t.action in (BUY_YES, BUY_NO)  # pays from its fee hold, else from proceeds
    t_yes = t.action in (BUY_YES, SELL_YES)  # prices in YES terms, else NO terms
    while t.remaining:
        i = book.best_ask if t_bid else book.best_bid
        if (t_bid and i > t.slot) or (not t_bid and i < t.slot) or not qty[i]:
            break
        level = levels[i]
        assert level is not None
        price = i * tick
        while t.remaining and qty[i]:
            mk = level.orders[level.head]
            if not mk.live:
                level.dead -= 1
                level.pop_front()
                continue
            if mk.user == uid:
                if _self_trade(eng, t, mk):
                    break
                continue
            q = t.remaining if t.remaining < mk.remaining else mk.remaining
            if t_bid:
                b, a = t, mk
            else:
                b, a = mk, t
            ba = b.account
            aa = a.account
            bp = b.position
            ap = a.position
            assert bp is not None and ap is not None
            buy_no = a.action == BUY_NO
            if b.action == BUY_YES:
                ba.reserved -= b.price * q
                ba.available += (b.price - price) * q
                bp.yes += q
                if buy_no:
                    collateral += SCALE * q
                    kind = "mint"
                else:
                    kind = "transfer_yes"
            else:
                bp.no -= q
                bp.no_reserved -= q
                ba.available += (SCALE - price) * q
                if buy_no:
                    kind = "transfer_no"
                else:
                    collateral -= SCALE * q
                    kind = "merge"
            if buy_no:
                aa.reserved -= a.price * q
                aa.available += (a.price - SCALE + price) * q
                ap.no += q
            else:
                ap.yes -= q
                ap.yes_reserved -= q
                aa.available += price * q
            t.remaining -= q
            t.filled += q
            mk.remaining -= q
            mk.filled += q
            mk.updated_ms = now
            qty[i] = qty[i] - q  # not -=, which mypyc compiles to a generic number op
            if mk.remaining:
                mk.status = PARTIALLY_FILLED
            else:
                mk.status = FILLED
                mk.live = False
                level.pop_front()
                del orders[mk.key]
                del mk.account.orders[mk.key]
            fee = 0
            if rate:
                fee = taker_fee(rate, q, price, price if t_yes else SCALE - price)
                if t_buys:
                    t_acct.reserved -= fee
                else:
                    t_acct.available -= fee
                fees += fee
            tid = eng.last_trade_id = eng.last_trade_id + stride
            out.append(Fill(tid, mid, price, q, kind, taker_side, t.id, uid, mk.id, mk.user,
                            now, fee))
            eng._touch_order(mk)
            eng._touch_account(ba)
            eng._touch_account(aa)
            eng._touch_position(bp)
            eng._touch_position(ap)
            market.last_price = price
            market.volume += q
        book.mark(level)
        if t.reason is not None:  # self-trade prevention stopped the taker
            break
        if not qty[i]:
            level.clear()
            if t_bid:
                book.best_ask = book.next_ask(i)
            else:
                book.best_bid = book.next_bid(i)
    if collateral:
        market.event.collateral += collateral
    if fees:
        market.event.fees += fees
        eng.treasury.fees += fees
    t.updated_ms = now
    eng._touch_market(market)
    return fees


def _self_trade(eng: State, taker: Order, maker: Order) -> bool:
    """Apply the taker's self-trade prevention; True if the taker must stop."""
    mode = taker.stp
    if mode != "cancel_taker":
        close(eng, maker, CANCELLED, Reason.SELF_TRADE)
    if mode != "cancel_resting":
        taker.reason = Reason.SELF_TRADE
        return True
    return False


# --- modify, cancel, expire ----------------------------------------------------------


def _owned_open_order(eng: State, user_id: int, order_id: int, command: str) -> Order | None:
    order = eng.orders.get(order_id)
    if order is None or order.user != user_id:
        # Another user's order is reported exactly like a missing one.
        eng._reject(user_id, command, Reason.UNKNOWN_ORDER, f"no open order {order_id}",
                    order_id=order_id)
        return None
    return order


def cancel(eng: State, cmd: c.CancelOrder) -> None:
    """Cancel one open order of the user."""
    order = _owned_open_order(eng, cmd.user_id, cmd.order_id, "CancelOrder")
    if order is not None:
        close(eng, order, CANCELLED, Reason.USER)


def cancel_all(eng: State, cmd: c.CancelAll) -> None:
    """Cancel every open order of the user, optionally only those of one market."""
    acct = eng.accounts.get(cmd.user_id)
    if acct is None:
        return
    mid = cmd.market_id
    for order in [o for o in acct.orders.values() if mid is None or o.market.id == mid]:
        close(eng, order, CANCELLED, Reason.USER)


def close(eng: State, order: Order, status: str, reason: str) -> None:
    """Take an open order out of the book, release its reservation, mark it done."""
    market = order.market
    market.book.remove(order)
    eng._touch_market(market)
    _release(eng, order)
    del eng.orders[order.key]
    del order.account.orders[order.key]
    order.status = status
    order.reason = reason
    order.updated_ms = eng.now_ms
    eng._touch_order(order)


def _release(eng: State, order: Order) -> None:
    """Return what the order's remaining quantity has reserved."""
    left = order.remaining
    action = order.action
    if action in (BUY_YES, BUY_NO):
        acct = order.account
        cash = order.price * left
        acct.reserved -= cash
        acct.available += cash
        eng._touch_account(acct)
    else:
        pos = order.position
        assert pos is not None
        if action == SELL_YES:
            pos.yes_reserved -= left
        else:
            pos.no_reserved -= left
        eng._touch_position(pos)


def modify(eng: State, cmd: c.ModifyOrder) -> None:
    """Change an open order's price and/or total quantity (see ``ModifyOrder``)."""
    order = _owned_open_order(eng, cmd.user_id, cmd.order_id, "ModifyOrder")
    if order is None:
        return
    market = order.market
    tick = market.tick
    price_in: object = order.price if cmd.price is None else cmd.price
    qty_in: object = order.quantity if cmd.quantity is None else cmd.quantity
    user = cmd.user_id
    if market.status != "active":
        eng._reject(user, "ModifyOrder", Reason.MARKET_NOT_ACTIVE,
                    f"market {market.id} is {market.status}", order_id=order.id)
        return
    if type(price_in) is not int or not 0 < price_in < SCALE or price_in % tick:
        eng._reject(user, "ModifyOrder", Reason.INVALID_PRICE,
                    price_problem(price_in, tick), order_id=order.id)
        return
    if type(qty_in) is not int or not order.filled < qty_in <= MAX_QUANTITY:
        eng._reject(user, "ModifyOrder", Reason.INVALID_QUANTITY,
                    f"quantity is the new total and must exceed the {order.filled} "
                    f"already filled (at most {MAX_QUANTITY})", order_id=order.id)
        return
    price: int = price_in
    qty: int = qty_in
    if price == order.price and qty == order.quantity:
        eng._touch_order(order)
    elif price == order.price and qty < order.quantity:
        _reduce(eng, order, order.quantity - qty)
    else:
        _replace(eng, order, price, qty)


def _reduce(eng: State, order: Order, by: int) -> None:
    """Lower an order's quantity in place: it keeps its time priority."""
    order.market.book.reduce(order, by)
    order.quantity -= by
    if order.is_buy:
        acct = order.account
        acct.reserved -= order.price * by
        acct.available += order.price * by
        eng._touch_account(acct)
    else:
        pos = order.position
        assert pos is not None
        if order.action == SELL_YES:
            pos.yes_reserved -= by
        else:
            pos.no_reserved -= by
        eng._touch_position(pos)
    order.updated_ms = eng.now_ms
    eng._touch_order(order)
    eng._touch_market(order.market)


def _replace(eng: State, order: Order, price: int, qty: int) -> None:
    """Re-price or enlarge an order: it goes to the back of the queue and may trade."""
    acct, pos, market = order.account, order.position, order.market
    assert pos is not None
    remaining = qty - order.filled
    yes = order.action == BUY_YES or order.action == SELL_YES
    slot = (price if yes else SCALE - price) // market.tick
    book = market.book
    crosses = slot >= book.best_ask if order.is_bid else slot <= book.best_bid
    rate = market.event.fee_rate
    fee_hold = worst_taker_fee(rate, remaining, price) if rate and crosses and order.is_buy \
        else 0
    problem = _replace_problem(order, acct, pos, price, remaining, yes, crosses, fee_hold)
    if problem is not None:
        eng._reject(order.user, "ModifyOrder", problem[0], problem[1], order_id=order.id)
        return
    _release(eng, order)
    book.remove(order)
    del eng.orders[order.key]
    del acct.orders[order.key]
    new = Order(order.id, order.user, market, order.action, price, slot, remaining,
                order.created_ms, acct, pos)
    new.quantity = qty
    new.filled = order.filled
    new.updated_ms = eng.now_ms
    new.order_type = order.order_type
    new.tif = order.tif
    new.post_only = order.post_only
    new.expires_at_ms = order.expires_at_ms
    new.client_order_id = order.client_order_id
    new.placement = order.placement
    new.stp = order.stp
    if new.client_order_id is not None:
        eng.client_orders[(new.user, new.client_order_id)] = new
    if new.is_buy:
        acct.available -= price * remaining
        acct.reserved += price * remaining
        eng._touch_account(acct)
    else:
        if yes:
            pos.yes_reserved += remaining
        else:
            pos.no_reserved += remaining
        eng._touch_position(pos)
    eng._touch_order(new)
    eng._touch_market(market)
    if crosses:
        _take(eng, new, fee_hold)
    # Only gtc/gtd orders rest, so the replacement rests like a gtc one; a gtd
    # expiry already queued for this id applies to the new object.
    _settle_taker(eng, new, _GTC)


def _replace_problem(order: Order, acct: Account, pos: Position, price: int, remaining: int,
                     yes: bool, crosses: bool, fee_hold: int) -> tuple[str, str] | None:
    """Why a re-priced or enlarged order cannot replace ``order`` (reason, message)."""
    if order.post_only and crosses:
        return Reason.POST_ONLY_WOULD_CROSS, "post-only order would take liquidity"
    if order.is_buy:
        extra = price * remaining - order.price * order.remaining + fee_hold
        if extra > acct.available:
            return (Reason.INSUFFICIENT_CASH, f"modification needs {format_money(extra)} more "
                    f"of cash{_fee_note(fee_hold)}, {format_money(acct.available)} available")
    else:
        free = pos.yes - pos.yes_reserved if yes else pos.no - pos.no_reserved
        if remaining - order.remaining > free:
            return (Reason.INSUFFICIENT_SHARES, f"modification needs "
                    f"{remaining - order.remaining} more shares, {free} free")
    return None
