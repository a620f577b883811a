"""Transfers another app owns: an order's click & collect transfer brings that order's units.

Such a transfer must move through its owner whatever the entry point — the pickup board, the
Transfers page of the admin, the transfers API — so the units land on the order, not in the
store's general stock with the order left waiting for them. Inventory sits below orders: the
orders app registers its owner here (orders/apps.py), and the stock-side entry points
(`inventory.services.transfers.transfer_*_by_staff`) hand an owned transfer to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TransferOwner:
    # transfer id -> what owns it, in words ("order C-2026-000123"), or None
    owner_of: Callable[[int], str | None]
    # (transfer_id, shipped, actor, idempotency_key) -> None
    ship: Callable[..., None]
    # (transfer_id, received, actor, idempotency_key) -> None
    receive: Callable[..., None]


_owners: list[TransferOwner] = []


def register_transfer_owner(owner: TransferOwner) -> None:
    if owner not in _owners:
        _owners.append(owner)


def transfer_owner(transfer_id: int) -> tuple[TransferOwner, str] | None:
    for owner in _owners:
        label = owner.owner_of(transfer_id)
        if label:
            return owner, label
    return None
