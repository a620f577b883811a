"""Every change of loyalty points goes through here, by topic:

    ledger     idempotent operations, account locks, the lot and balance writes
    accounts   enrolment and card numbers
    earning    points earned on purchases (every channel alike), reversed on returns
    spending   hold → capture / release, rewards, refunds, adjustments
    tiers      expiry and tiers
    merge      what a customer merge, unmerge or erasure does to points

The ledger: an earn creates a `PointsLot`; every change of a lot's `remaining` is a
`PointsMovement`; `LoyaltyAccount.points_remaining` caches SUM(lot.remaining). Each public service
is one idempotent `PointsOperation` (unique key + hash of the arguments): the same key replays the
first result, another request under the same key is refused (422).

Concurrency: every operation that takes points locks its account row first
(`SELECT … FOR UPDATE`; a merge locks both accounts in primary-key order), then changes lots with
conditional UPDATEs (`… SET remaining = remaining - x WHERE remaining >= x AND <spendable now>`)
and the account with `… WHERE points_remaining >= x`, so two channels spending the same points at
once are serialised on the account and can never take more than the spendable balance; the
database CHECKs (`remaining >= 0`, `points_remaining >= 0`) back it up. Spends change state with a
conditional UPDATE on their status, so a capture racing a release or an expiry wins or loses whole.
"""

from loyalty.services.accounts import (
    account_for,
    account_open,
    card_number_new,
)
from loyalty.services.earning import (
    PurchaseLine,
    ReturnedLine,
    earning_rules_at,
    points_earn_for_source,
    points_for_lines,
    points_reverse_for_return,
    purchase_lines_clean,
)
from loyalty.services.ledger import (
    MAX_POINTS,
    account_balance_change,
    account_lock,
    account_lock_live,
    accounts_lock,
    lot_change,
    lot_create,
    lots_take_fefo,
    points_operation_run,
    program_settings,
    validate_points,
)
from loyalty.services.merge import (
    account_erase,
    accounts_merge,
    accounts_unmerge,
    lots_move,
    open_holds_blocker,
)
from loyalty.services.spending import (
    points_adjust,
    points_capture,
    points_give_back,
    points_hold,
    points_holds_expire,
    points_refund_spent,
    points_release,
    points_spend_for_reward,
    reward_buy,
    spend_close,
    spend_get,
)
from loyalty.services.tiers import (
    points_expire,
    qualifying_points,
    tier_for,
    tier_set,
    tier_upgrade_check,
    tiers_review,
)

__all__ = [
    "MAX_POINTS",
    "PurchaseLine",
    "ReturnedLine",
    "account_balance_change",
    "account_erase",
    "account_for",
    "account_lock",
    "account_lock_live",
    "account_open",
    "accounts_lock",
    "accounts_merge",
    "accounts_unmerge",
    "card_number_new",
    "earning_rules_at",
    "lot_change",
    "lot_create",
    "lots_move",
    "lots_take_fefo",
    "open_holds_blocker",
    "points_adjust",
    "points_capture",
    "points_earn_for_source",
    "points_expire",
    "points_for_lines",
    "points_give_back",
    "points_hold",
    "points_holds_expire",
    "points_operation_run",
    "points_refund_spent",
    "points_release",
    "points_reverse_for_return",
    "points_spend_for_reward",
    "program_settings",
    "purchase_lines_clean",
    "qualifying_points",
    "reward_buy",
    "spend_close",
    "spend_get",
    "tier_for",
    "tier_set",
    "tier_upgrade_check",
    "tiers_review",
    "validate_points",
]
