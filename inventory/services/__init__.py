"""Every stock change, by topic. `ledger.stock_apply` is the one writer of positions and
movements; the other modules build the changes of one kind of operation each:

    goods          receipts, adjustments, unsellable units, returns
    sales          till sales (never refused), one by one or a till's backlog
    counts         physical counts
    reservations   holds for orders and carts, committed or released
    transfers      requests, shipping and receiving between locations
    safety_stock   what online channels must leave on the shelf

Callers import from here: `from inventory import services as stock; stock.stock_receive(…)`.
"""

from inventory.services.counts import stock_count_apply
from inventory.services.goods import stock_adjust, stock_receive, stock_return, stock_set_aside
from inventory.services.ledger import (
    ApplyResult,
    Guard,
    OperationChanges,
    PositionOutcome,
    StockChange,
    change,
    merged_lines,
    stock_apply,
    stock_apply_many,
    validate_quantity,
)
from inventory.services.reservations import (
    ReservationRequest,
    reservation_commit,
    reservation_create,
    reservation_release,
    reservations_create,
    reservations_release_expired,
)
from inventory.services.safety_stock import safety_stock_set
from inventory.services.sales import TillSale, stock_sell_at_till, stock_sell_at_till_many
from inventory.services.transfers import (
    TransferOwnedElsewhere,
    transfer_cancel,
    transfer_cancel_with_owner,
    transfer_receive,
    transfer_receive_with_owner,
    transfer_request,
    transfer_ship,
    transfer_ship_with_owner,
)

__all__ = [
    "ApplyResult",
    "Guard",
    "OperationChanges",
    "PositionOutcome",
    "ReservationRequest",
    "StockChange",
    "TillSale",
    "change",
    "merged_lines",
    "reservation_commit",
    "reservation_create",
    "reservation_release",
    "reservations_create",
    "reservations_release_expired",
    "safety_stock_set",
    "stock_adjust",
    "stock_apply",
    "stock_apply_many",
    "stock_count_apply",
    "stock_receive",
    "stock_return",
    "stock_sell_at_till",
    "stock_sell_at_till_many",
    "stock_set_aside",
    "TransferOwnedElsewhere",
    "transfer_cancel",
    "transfer_cancel_with_owner",
    "transfer_receive",
    "transfer_receive_with_owner",
    "transfer_request",
    "transfer_ship",
    "transfer_ship_with_owner",
    "validate_quantity",
]
