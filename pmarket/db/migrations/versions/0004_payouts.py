"""Payouts: what each resolution paid each position, with its YES and NO shares.

Resolutions before this revision left only their ``payout`` ledger entries (the cash and
the number of shares, YES and NO together). They are copied into ``payouts`` wherever
the sides can be told apart exactly: an event with a winner (the winner's YES and the
losers' NO paid $1 each, the rest nothing) and a void event of three or more outcomes
(a YES paid 1/N, a NO 1 - 1/N: the amount fixes the split). A void event of two
outcomes (or a yes/no question) paid $0.50 per share whatever its side, so its split is
unknowable: those entries are not copied, and the upgrade says how many it left out.
A copied payout takes the identity the engine now gives it (the event after its ledger
entry), so a redelivered resolution is never booked twice.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

import pmarket.db.types
from pmarket.engine.units import SCALE

log = logging.getLogger("pmarket.db.migrate")

revision = "0004"
down_revision = "0003"  # re-chained after 0003 (sessions and API keys)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("market_id", sa.BigInteger(), nullable=False),
        sa.Column("yes", sa.BigInteger(), nullable=False),
        sa.Column("no", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("stream", "seq", "idx", name=op.f("uq_payouts_stream_seq_idx")),
    )
    op.create_index(op.f("ix_payouts_user_id_id"), "payouts", ["user_id", "id"],
                    unique=False)
    op.create_index(op.f("ix_payouts_user_id_event_id"), "payouts", ["user_id", "event_id"],
                    unique=False)
    _copy_ledger_payouts()


def sides(amount: int, quantity: int, won: bool, void: bool, outcomes: int
          ) -> tuple[int, int] | None:
    """``(yes, no)`` shares a ``payout`` ledger entry paid for, or None if unknowable."""
    if not void:
        paid, rest = divmod(amount, SCALE)
        if rest or paid > quantity:
            return None
        return (paid, quantity - paid) if won else (quantity - paid, paid)
    n = max(outcomes, 2)
    if n == 2:
        return None
    # amount = floor(SCALE * (yes + no * (n - 1)) / n) with no = quantity - yes: the
    # floor drops less than n units, far less than one YES share changes it.
    yes = (SCALE * quantity * (n - 1) - n * amount) // (SCALE * (n - 2))
    no = quantity - yes
    if not (0 <= yes <= quantity) or (SCALE * (yes + no * (n - 1))) // n != amount:
        return None
    return yes, no


def _copy_ledger_payouts() -> None:
    conn = op.get_bind()
    outcomes = dict(conn.execute(sa.text(
        "SELECT event_id, COUNT(*) FROM markets GROUP BY event_id")).all())
    entries = conn.execute(sa.text(
        "SELECT l.user_id, l.event_id, l.market_id, l.amount, l.quantity, l.at, l.stream, "
        "l.seq, l.idx, e.winning_outcome_id, e.void FROM ledger_entries l "
        "JOIN events e ON e.id = l.event_id "
        "WHERE l.kind = 'payout' AND l.market_id IS NOT NULL ORDER BY l.id")
        .columns(at=pmarket.db.types.UTCDateTime())).all()
    rows, unknowable = [], 0
    for (user, event, market, amount, quantity, at, stream, seq, idx, winner,
         void) in entries:
        found = sides(amount, quantity, market == winner, bool(void),
                      outcomes.get(event, 1))
        if found is None:
            unknowable += 1
            continue
        rows.append({"user_id": user, "event_id": event, "market_id": market,
                     "yes": found[0], "no": found[1], "amount": amount, "paid_at": at,
                     "stream": stream, "seq": seq, "idx": idx + 1})
    if rows:
        table = sa.table("payouts", *(sa.column(c) for c in rows[0] if c != "paid_at"),
                         sa.column("paid_at", pmarket.db.types.UTCDateTime()))
        op.bulk_insert(table, rows)
    if unknowable:
        log.warning("payouts: %d payout(s) of void events with two outcomes (or void "
                    "yes/no questions) resolved before this upgrade are not listed by "
                    "GET /payouts: a share of either side paid the same, so the ledger "
                    "cannot say which it was (their cash is in the ledger)", unknowable)


def downgrade() -> None:
    op.drop_index(op.f("ix_payouts_user_id_event_id"), table_name="payouts")
    op.drop_index(op.f("ix_payouts_user_id_id"), table_name="payouts")
    op.drop_table("payouts")
