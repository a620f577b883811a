"""The extension point other apps use to take part in merges, exports, erasures and history.

Apps register in their `AppConfig.ready()` (see docs/customers.md for worked examples):

    register_customer_link(Order, "customer")                  # rows a merge moves (and back)
    register_merge_handler("loyalty.accounts", merge=..., unmerge=...)   # things to combine
    register_merge_blocker("loyalty.two_accounts", check)      # refuse an automatic merge
    register_export_contributor("orders", contribute)          # GDPR export section
    register_erasure_blocker("orders.open", check)             # refuse an erasure, with a reason
    register_erasure_handler("orders.addresses", erase)        # anonymise what the app holds
    register_history_provider("orders", provide)               # entries of the unified history

Every callable runs inside the transaction of the customers service that calls it, with both
customer rows locked, so it may write; it must not call outside systems (record an intent and
act after commit instead). Registration is keyed by name: registering a name again replaces it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from customers.models import Customer

if TYPE_CHECKING:
    from customers.models import Customer


# ---- history ---------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class HistoryCursor:
    """A position in the unified history. Entries are ordered newest first by
    (occurred_at, provider, pk), all descending, so every entry has exactly one place."""

    occurred_at: datetime
    provider: str
    pk: int

    def encode(self) -> str:
        raw = json.dumps([self.occurred_at.isoformat(), self.provider, self.pk])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> HistoryCursor:
        """Raises ValueError on anything that is not a cursor this code produced."""
        padded = token + "=" * (-len(token) % 4)
        occurred_at, provider, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = parse_datetime(occurred_at)
        if moment is None or not isinstance(provider, str) or not isinstance(pk, int):
            raise ValueError("not a history cursor")
        return cls(moment, provider, pk)

    def older_q(self, provider: str, *, time_field: str = "occurred_at", pk_field: str = "pk") -> Q:
        """The filter a provider named `provider` applies to return only entries after this
        cursor in the unified order (strictly older, ties broken by provider name then pk)."""
        older = Q(**{f"{time_field}__lt": self.occurred_at})
        if provider < self.provider:
            return older | Q(**{time_field: self.occurred_at})
        if provider == self.provider:
            return older | Q(**{time_field: self.occurred_at, f"{pk_field}__lt": self.pk})
        return older


@dataclass(frozen=True)
class HistoryEntry:
    occurred_at: datetime
    provider: str
    pk: int
    kind: str
    summary: str
    sales_channel: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def cursor(self) -> HistoryCursor:
        return HistoryCursor(self.occurred_at, self.provider, self.pk)


# provide(customer, *, before: HistoryCursor | None, limit: int) -> list[HistoryEntry]
# Must return at most `limit` entries, the newest ones strictly after `before` in the unified
# order (use `before.older_q(name)`), newest first. One indexed query is the norm.
HistoryProvider = Callable[..., list[HistoryEntry]]


# ---- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerLink:
    model: type[models.Model]
    field_name: str

    @property
    def label(self) -> str:
        return self.model._meta.label_lower


@dataclass(frozen=True)
class MergeHandler:
    """merge(survivor, absorbed) -> JSON-able payload describing what it did (stored in the
    journal); unmerge(survivor, absorbed, payload) reverses exactly that."""

    name: str
    merge: Callable[[Customer, Customer], Any]
    unmerge: Callable[[Customer, Customer, Any], None]


@dataclass
class CustomerRegistry:
    links: dict[tuple[str, str], CustomerLink] = field(default_factory=dict)
    merge_handlers: dict[str, MergeHandler] = field(default_factory=dict)
    merge_blockers: dict[str, Callable[[Customer, Customer], list[str]]] = field(
        default_factory=dict
    )
    export_contributors: dict[str, Callable[[Customer], Any]] = field(default_factory=dict)
    erasure_blockers: dict[str, Callable[[Customer], list[str]]] = field(default_factory=dict)
    erasure_handlers: dict[str, Callable[[Customer], dict[str, int]]] = field(default_factory=dict)
    history_providers: dict[str, HistoryProvider] = field(default_factory=dict)

    def snapshot(self) -> CustomerRegistry:
        return CustomerRegistry(
            **{name: dict(getattr(self, name)) for name in self.__dataclass_fields__}
        )

    def restore(self, saved: CustomerRegistry) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, dict(getattr(saved, name)))

    def link_for(self, label: str, field_name: str) -> CustomerLink | None:
        return self.links.get((label, field_name))


registry = CustomerRegistry()


def register_customer_link(model: type[models.Model], field_name: str) -> None:
    """`model.<field_name>` is a ForeignKey to Customer whose rows belong to the person: a merge
    moves them to the survivor (recording each pk), an unmerge moves them back. Do not register
    a field that is unique per customer (a OneToOne): combine those with a merge handler."""

    model_field = model._meta.get_field(field_name)
    if getattr(model_field, "related_model", None) is not Customer or not model_field.many_to_one:
        raise TypeError(f"{model._meta.label}.{field_name} is not a ForeignKey to Customer.")
    link = CustomerLink(model, field_name)
    registry.links[(link.label, field_name)] = link


def register_merge_handler(
    name: str,
    *,
    merge: Callable[[Customer, Customer], Any],
    unmerge: Callable[[Customer, Customer, Any], None],
) -> None:
    """Handlers run after the registered links have moved (merge), and after they have moved back
    (unmerge, in reverse registration order)."""
    registry.merge_handlers[name] = MergeHandler(name, merge, unmerge)


def register_merge_blocker(name: str, check: Callable[[Customer, Customer], list[str]]) -> None:
    """check(survivor, absorbed) -> reasons the two records cannot be one person automatically
    (empty list: no objection). A staff merge may force past them with a written reason."""
    registry.merge_blockers[name] = check


def register_export_contributor(name: str, contribute: Callable[[Customer], Any]) -> None:
    """contribute(customer) -> JSON-able data: the app's section `name` in the GDPR export."""
    registry.export_contributors[name] = contribute


def register_erasure_blocker(name: str, check: Callable[[Customer], list[str]]) -> None:
    """check(customer) -> reasons the customer cannot be erased now, e.g. ["order W123 is open"]."""
    registry.erasure_blockers[name] = check


def register_erasure_handler(name: str, erase: Callable[[Customer], dict[str, int]]) -> None:
    """erase(customer) anonymises or deletes the app's personal data of this customer and returns
    counts (no personal data: the result is stored in the erasure record). Rows kept for
    accounting keep their link to the (anonymised) customer."""
    registry.erasure_handlers[name] = erase


def register_history_provider(name: str, provide: HistoryProvider) -> None:
    registry.history_providers[name] = provide
