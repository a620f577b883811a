"""Back office for orders: read-only orders with their routing decisions and journal, a pickup
board per store with the staff actions, and the per-channel routing rules.

Staff see the orders of the locations they are attached to (stores.access); every action calls an
orders service, with an idempotency key embedded in the form so that a double submit applies
once.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from common.admin_utils import (
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    admin_actor,
    admin_key,
    run_admin_service,
)
from common.channels import SalesChannel
from common.money import Money
from orders import access, selectors, services
from orders.models import (
    Allocation,
    Order,
    OrderEvent,
    OrderLine,
    PendingNotification,
    Return,
    ReturnLine,
    RoutingDecision,
    RoutingRule,
)
from payments.selectors import order_payment_summary
from stores.access import may_act_at, staff_location_ids
from stores.models import Location


def _pretty(value) -> str:
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(value, indent=1))


class OrderPartInline(ReadOnlyInline):
    """Whoever may view the order sees its lines, allocations, decisions and journal."""

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("orders.view_order")


class OrderLineInline(OrderPartInline):
    model = OrderLine
    fields = ["line_no", "sku", "quantity", "unit_price", "status", "quantity_returned"]
    readonly_fields = fields


class AllocationInline(OrderPartInline):
    model = Allocation
    fields = ["location", "kind", "status", "transfer", "expected_at", "held"]
    readonly_fields = fields

    @admin.display(description="Lines (reservation)")
    def held(self, allocation):
        return ", ".join(
            f"line {line.order_line.line_no} × {line.quantity} (res. {line.reservation_id}"
            f"{'' if line.is_active else ', inactive'})"
            for line in allocation.lines.select_related("order_line")
        )


class RoutingDecisionInline(OrderPartInline):
    model = RoutingDecision
    fields = ["created_at", "trigger", "outcome", "rules", "chosen_locations", "candidates_table"]
    readonly_fields = fields

    @admin.display(description="Chosen")
    def chosen_locations(self, decision):
        return _pretty(decision.chosen)

    @admin.display(description="Candidates (scores, why rejected)")
    def candidates_table(self, decision):
        return _pretty(decision.candidates)


class OrderEventInline(OrderPartInline):
    model = OrderEvent
    fields = ["occurred_at", "kind", "from_status", "to_status", "actor", "channel", "data"]
    readonly_fields = fields


class LocationScopedMixin:
    """Staff see only the orders of their locations."""

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        allowed = staff_location_ids(request.user)
        if allowed is None:
            return queryset
        return queryset.filter(pk__in=selectors.orders_for_locations(allowed).values("pk"))


@admin.register(Order)
class OrderAdmin(LocationScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "reference",
        "status",
        "fulfilment",
        "pickup_location",
        "channel",
        "total_amount",
        "currency",
        "placed_at",
        "ready_by",
        "pickup_deadline",
    ]
    list_filter = ["status", "fulfilment", "channel", "pickup_location"]
    search_fields = ["reference", "customer__number", "contact_email"]
    date_hierarchy = "placed_at"
    list_select_related = ["pickup_location"]
    inlines = [OrderLineInline, AllocationInline, RoutingDecisionInline, OrderEventInline]
    readonly_fields = [
        "reference",
        "channel",
        "customer",
        "status",
        "fulfilment",
        "pickup_location",
        "total_amount",
        "currency",
        "ship_name",
        "ship_address",
        "ship_postcode",
        "ship_city",
        "ship_country",
        "ready_by",
        "delivery_expected_on",
        "ready_at",
        "pickup_deadline",
        "placed_at",
        "closed_at",
    ]
    exclude = ["pickup_nonce", "created_by_key", "ship_latitude", "ship_longitude"]
    actions = ["start_picking", "ship_transfers", "cancel_orders"]

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("orders.view_order")

    def _each(self, request, queryset, call, verb):
        done = 0
        for order in queryset:
            done += run_admin_service(
                request, lambda order=order: call(order), f"{order.reference} {verb}."
            )
        return done

    @admin.action(description="Start picking", permissions=["prepare"])
    def start_picking(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda order: services.order_picking_start(
                order_id=order.pk,
                actor=admin_actor(request),
                channel=SalesChannel.BACKOFFICE,
                idempotency_key=admin_key(f"picking:{order.pk}"),
            ),
            "is being picked",
        )

    @admin.action(description="Cancel (releases the stock)", permissions=["cancel"])
    def cancel_orders(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda order: services.order_cancel(
                order_id=order.pk,
                actor=admin_actor(request),
                channel=SalesChannel.BACKOFFICE,
                idempotency_key=admin_key(f"cancel:{order.pk}"),
                reason="cancelled in the back office",
            ),
            "cancelled",
        )

    @admin.action(
        description="Ship their transfers to the pickup store (from my locations)",
        permissions=["transfer"],
    )
    def ship_transfers(self, request, queryset):
        allowed = staff_location_ids(request.user)
        pending = Allocation.objects.filter(
            order__in=queryset, kind="transfer", status="reserved"
        ).select_related("order", "location")
        if allowed is not None:
            pending = pending.filter(location_id__in=allowed)
        if not pending:
            messages.warning(request, "No transfer of these orders waits to leave your locations.")
        for allocation in pending:
            run_admin_service(
                request,
                lambda allocation=allocation: services.order_transfer_ship(
                    order_id=allocation.order_id,
                    allocation_id=allocation.pk,
                    actor=admin_actor(request),
                    channel=SalesChannel.BACKOFFICE,
                    idempotency_key=admin_key(f"transfer-ship:{allocation.pk}"),
                ),
                f"{allocation.order.reference}: transfer from {allocation.location.code} shipped.",
            )

    def has_transfer_permission(self, request):
        return request.user.has_perm("orders.receive_order_transfer")

    def has_prepare_permission(self, request):
        return request.user.has_perm("orders.prepare_order")

    def has_cancel_permission(self, request):
        return request.user.has_perm("orders.cancel_order")

    # ---- the pickup board ------------------------------------------------------------------

    def get_urls(self):
        return [
            path("board/", self.admin_site.admin_view(self.board_index), name="orders_board"),
            path(
                "board/<int:location_id>/",
                self.admin_site.admin_view(self.board),
                name="orders_board_location",
            ),
            *super().get_urls(),
        ]

    def board_index(self, request):
        if not request.user.has_perm("orders.view_order"):
            raise PermissionDenied
        allowed = staff_location_ids(request.user)
        stores = Location.objects.filter(is_active=True, allows_pickup=True)
        if allowed is not None:
            stores = stores.filter(pk__in=allowed)
        if stores.count() == 1:
            return redirect("admin:orders_board_location", location_id=stores.get().pk)
        return TemplateResponse(
            request,
            "orders/admin/board_index.html",
            {**self.admin_site.each_context(request), "title": "Pickup boards", "stores": stores},
        )

    def board(self, request, location_id: int):
        location = get_object_or_404(Location, pk=location_id)
        if not request.user.has_perm("orders.view_order") or not may_act_at(
            request.user, location.pk
        ):
            raise PermissionDenied
        if request.method == "POST":
            self._board_action(request, location)
            return redirect("admin:orders_board_location", location_id=location.pk)
        board = selectors.pickup_board(location_id=location.pk)

        for order in [*board["ready"], *board["overdue"]]:  # what the till must take, if any
            order.due_at_till = order_payment_summary(order_reference=order.reference).due
        incoming = (
            Allocation.objects.filter(
                order__pickup_location=location, kind="transfer", status="in_transit"
            )
            .select_related("order", "location")
            .order_by("expected_at")
        )
        return TemplateResponse(
            request,
            "orders/admin/pickup_board.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Pickup board – {location.code} {location.name}",
                # the card's lines and awaited transfers come with the board (selectors)
                "location": location,
                "columns": [
                    ("To prepare", board["to_prepare"]),
                    ("Being picked", board["picking"]),
                    ("Ready", board["ready"]),
                    ("Overdue (not collected in time)", board["overdue"]),
                ],
                "incoming": incoming,
                "form_key": admin_key(f"board:{location.pk}"),
                "reject_reasons": REJECTION_LABELS,
            },
        )

    def _board_action(self, request, location: Location) -> None:
        action = request.POST.get("action", "")
        order = get_object_or_404(Order, pk=request.POST.get("order"))
        if order.pickup_location_id != location.pk:
            raise PermissionDenied
        common = {
            "order_id": order.pk,
            "actor": admin_actor(request),
            "channel": SalesChannel.BACKOFFICE,
            # One key per form submission and target: a double submit applies once, while two
            # different lines rejected from the same page are two requests.
            "idempotency_key": ":".join(
                [
                    request.POST.get("form_key", ""),
                    action,
                    str(order.pk),
                    request.POST.get("line", ""),
                    request.POST.get("allocation", ""),
                ]
            ),
        }
        # The board's buttons, as order actions: the same rule as the API (orders.access).
        board_actions = {
            "picking": "picking",
            "ready": "ready",
            "reject": "reject",
            "collect": "collect",
            "receive": "transfer-receive",
        }
        if action not in board_actions or not access.staff_may(request.user, board_actions[action]):
            raise PermissionDenied
        if action == "picking":
            call, done = (lambda: services.order_picking_start(**common)), "is being picked"
        elif action == "ready":
            call, done = (lambda: services.order_mark_ready(**common)), "is ready (customer told)"
        elif action == "collect":
            paid = None
            if request.POST.get("paid_at_till"):  # the till took what was due
                due = order_payment_summary(order_reference=order.reference).due
                paid = Money(due, order.currency) if due > 0 else None
            call = lambda: services.order_handover(  # noqa: E731
                code=request.POST.get("code", ""),
                paid_at_till=paid,
                till_reference=f"board:{location.code}",
                **common,
            )
            done = "was handed over"
        elif action == "reject":
            form = RejectForm(request.POST)
            if not form.is_valid():
                messages.error(request, f"Reject: {form.errors.as_text()}")
                return
            call = lambda: services.order_line_reject(  # noqa: E731
                line_no=form.cleaned_data["line"],
                location_id=location.pk,
                reason=form.cleaned_data["reason"],
                found_quantity=form.cleaned_data["found_quantity"],
                **common,
            )
            done = "line rejected and routed again"
        else:
            call = lambda: services.order_transfer_receive(  # noqa: E731
                allocation_id=int(request.POST.get("allocation", 0)), **common
            )
            done = "transfer received; the units are held for it"
        run_admin_service(request, call, f"{order.reference}: {done}.")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Another store's order is not "deleted": say whose it is and go back to the board."""
        order = Order.objects.filter(pk=object_id).select_related("pickup_location").first()
        if order is not None and not self.get_queryset(request).filter(pk=order.pk).exists():
            store = order.pickup_location.code if order.pickup_location else "another location"
            messages.error(
                request,
                f"Order {order.reference} is prepared by {store}, not by one of your stores: "
                "you can open only your stores' orders.",
            )
            return redirect("admin:orders_board")
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "board_url": reverse("admin:orders_board")}
        return super().changelist_view(request, extra_context)


# What the associate reads when a line cannot be prepared (the values are the API's).
REJECTION_LABELS = [
    ("not_on_shelf", "Not on the shelf (some or all units missing)"),
    ("damaged", "Damaged (some or all units)"),
]


class RejectForm(forms.Form):
    line = forms.IntegerField(min_value=1)
    reason = forms.ChoiceField(choices=[(r, r) for r in services.REJECTION_REASONS])
    found_quantity = forms.IntegerField(min_value=0, initial=0, required=False)

    def clean_found_quantity(self):
        return self.cleaned_data.get("found_quantity") or 0


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ["channel", "rule_order", "protect_last_units", "updated_at", "updated_by"]
    readonly_fields = ["updated_at", "updated_by"]
    fields = ["channel", "rules", "protect_last_units", "updated_at", "updated_by"]

    @admin.display(description="Rules (first decides)")
    def rule_order(self, rule):
        return mark_safe(" &rsaquo; ".join(format_html("{}", name) for name in rule.rules))  # noqa: S308

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


class ReturnLineInline(ReadOnlyInline):
    model = ReturnLine
    fields = ["order_line", "quantity", "unsellable", "reason", "refund_amount"]
    readonly_fields = fields


@admin.register(Return)
class ReturnAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "order", "location", "refund_amount", "currency", "actor", "created_at"]
    list_filter = ["location"]
    search_fields = ["order__reference"]
    inlines = [ReturnLineInline]


@admin.register(PendingNotification)
class PendingNotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Order messages not sent yet: normally none for more than a few seconds; rows with
    attempts and an error are failing (after the last attempt they stay here)."""

    list_display = ["id", "order", "kind", "attempts", "due_at", "last_error", "created_at"]
    list_filter = ["kind", "attempts"]
    search_fields = ["order__reference"]
    list_select_related = ["order"]


__all__ = ["OrderAdmin"]
