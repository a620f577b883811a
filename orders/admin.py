"""Back office for orders: read-only orders with their routing decisions and journal, a pickup
board per store with the staff actions, and the per-channel routing rules.

Staff see the orders of the locations they are attached to (stores.access); every action calls an
orders service, with an idempotency key embedded in the form so that a double submit applies
once.
"""

import zoneinfo

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

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

    @admin.display(description=gettext_lazy("Lines (reservation)"))
    def held(self, allocation):
        return ", ".join(
            _("line %(line)s × %(quantity)s (reservation %(reservation)s%(inactive)s)")
            % {
                "line": line.order_line.line_no,
                "quantity": line.quantity,
                "reservation": line.reservation_id,
                "inactive": "" if line.is_active else _(", released"),
            }
            for line in allocation.lines.select_related("order_line")
        )


class RoutingDecisionInline(OrderPartInline):
    model = RoutingDecision
    fields = ["created_at", "trigger", "outcome", "rules", "candidates_table"]
    readonly_fields = fields

    @admin.display(description=gettext_lazy("Locations weighed (first rule decides)"))
    def candidates_table(self, decision):
        """The decision as staff read it: each location, its rank, scores and why not chosen."""
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    row.get("rank", ""),
                    row.get("location", ""),
                    _("chosen") if row.get("chosen") else "",
                    ", ".join(
                        f"{rule} {score}" for rule, score in (row.get("scores") or {}).items()
                    ),
                    row.get("rejected") or "",
                )
                for row in decision.candidates or []
                if isinstance(row, dict)
            ),
        )
        return format_html(
            '<table class="routing-table"><thead><tr><th>#</th><th>{}</th><th></th><th>{}</th>'
            "<th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("Location"),
            _("Scores"),
            _("Why not"),
            rows,
        )


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
    # Six columns: the list fits a shop-floor tablet (1024 px) with its filters; the channel,
    # deadline and the rest are filters or on the order page.
    list_display = ["reference", "status", "served", "total", "placed", "due"]
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

    @admin.display(description=gettext_lazy("fulfilment"), ordering="fulfilment")
    def served(self, order):
        if order.pickup_location is None:
            return order.get_fulfilment_display()
        return f"{order.get_fulfilment_display()} · {order.pickup_location.code}"

    @admin.display(description=gettext_lazy("total"), ordering="total_amount")
    def total(self, order):
        return f"{order.total_amount} {order.currency}"

    @admin.display(description=gettext_lazy("placed at"), ordering="placed_at")
    def placed(self, order):
        return _short_time(order.placed_at, order.pickup_location)

    @admin.display(description=gettext_lazy("ready by"), ordering="ready_by")
    def due(self, order):
        return _short_time(order.ready_by, order.pickup_location)

    def _each(self, request, queryset, call, said):
        done = 0
        for order in queryset:
            done += run_admin_service(
                request, lambda order=order: call(order), said % {"reference": order.reference}
            )
        return done

    @admin.action(description=gettext_lazy("Start picking"), permissions=["prepare"])
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
            _("%(reference)s is being picked."),
        )

    @admin.action(description=gettext_lazy("Cancel (releases the stock)"), permissions=["cancel"])
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
            _("%(reference)s cancelled."),
        )

    @admin.action(
        description=gettext_lazy("Ship their transfers to the pickup store (from my locations)"),
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
            messages.warning(
                request, _("No transfer of these orders waits to leave your locations.")
            )
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
                _("%(reference)s: transfer from %(location)s shipped.")
                % {"reference": allocation.order.reference, "location": allocation.location.code},
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
        stores = _board_stores(request.user)
        if stores.count() == 1:
            return redirect("admin:orders_board_location", location_id=stores.get().pk)
        return TemplateResponse(
            request,
            "orders/admin/board_index.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Pickup boards"),
                "stores": stores,
            },
        )

    def board(self, request, location_id: int):
        location = get_object_or_404(Location, pk=location_id)
        if not request.user.has_perm("orders.view_order") or not may_act_at(
            request.user, location.pk
        ):
            raise PermissionDenied
        if request.method == "POST":
            self._board_action(request, location)
            back = request.POST.get("next", "")
            if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
                return redirect(back)  # the order page's own actions come back to it
            return redirect(request.get_full_path())
        show = request.GET.get("show", "today")
        if show not in selectors.BOARD_VIEWS:
            show = "today"
        board = selectors.pickup_board(location_id=location.pk, show=show)
        self._with_payment_due(board["ready"] + board["overdue"])
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
                "title": _("Pickup board – %(code)s %(name)s")
                % {"code": location.code, "name": location.name},
                # the card's lines and awaited transfers come with the board (selectors)
                "location": location,
                "show": show,
                "views": [
                    (name, label, board["counts"][name])
                    for name, label in [
                        ("today", _("Today")),
                        ("overdue", _("Late")),
                        ("all", pgettext("pickup board: every order", "All")),
                    ]
                ],
                "columns": [
                    (_("To prepare"), board["to_prepare"]),
                    (_("Being picked"), board["picking"]),
                    (_("Ready"), board["ready"]),
                    (_("Not collected in time"), board["overdue"]),
                ],
                "incoming": incoming,
                "may_take_returns": request.user.has_perm("orders.add_return"),
                **self._card_context(request, location),
                "board_url": request.get_full_path(),  # an action comes back to this view
            },
        )

    def _card_context(self, request, location: Location) -> dict:
        return {
            # a button only for what the staff member may do (a view-only user gets none)
            "may": {
                name: access.staff_may(request.user, action)
                for name, action in [
                    ("prepare", "picking"),
                    ("reject", "reject"),
                    ("collect", "collect"),
                    ("receive", "transfer-receive"),
                ]
            },
            "form_key": admin_key(f"board:{location.pk}"),
            "reject_reasons": REJECTION_LABELS,
            "board_url": reverse("admin:orders_board_location", args=[location.pk]),
        }

    @staticmethod
    def _with_payment_due(orders) -> None:
        for order in orders:  # what the till must take at the hand-over, if any
            order.due_at_till = order_payment_summary(order_reference=order.reference).due

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
            call, done = (lambda: services.order_picking_start(**common)), _("is being picked")
        elif action == "ready":
            call = lambda: services.order_mark_ready(**common)  # noqa: E731
            done = _("is ready (the customer is told)")
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
            done = _("was handed over")
        elif action == "reject":
            form = RejectForm(request.POST)
            if not form.is_valid():
                messages.error(request, _("Reject: %(errors)s") % {"errors": form.errors.as_text()})
                return
            call = lambda: services.order_line_reject(  # noqa: E731
                line_no=form.cleaned_data["line"],
                location_id=location.pk,
                reason=form.cleaned_data["reason"],
                found_quantity=form.cleaned_data["found_quantity"],
                **common,
            )
            done = _("line rejected and routed again")
        else:
            call = lambda: services.order_transfer_receive(  # noqa: E731
                allocation_id=int(request.POST.get("allocation", 0)), **common
            )
            done = _("transfer received; the units are held for it")
        run_admin_service(
            request,
            call,
            _("%(reference)s: %(done)s.") % {"reference": order.reference, "done": done},
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Another store's order is not "deleted": say whose it is and go back to the board.
        An order on a board comes with its card (the board's actions) and the way back."""
        order = Order.objects.filter(pk=object_id).select_related("pickup_location").first()
        if order is not None and not self.get_queryset(request).filter(pk=order.pk).exists():
            store = order.pickup_location.code if order.pickup_location else _("another location")
            messages.error(
                request,
                _(
                    "Order %(reference)s is prepared by %(store)s, not by one of your stores: "
                    "you can open only your stores' orders."
                )
                % {"reference": order.reference, "store": store},
            )
            return redirect("admin:orders_board")
        extra_context = {**(extra_context or {}), **self._order_card(request, order)}
        store_zone = order.pickup_location.timezone if order and order.pickup_location else None
        if store_zone is None:
            return super().change_view(request, object_id, form_url, extra_context)
        # The order's times on its store's clock (rendered here, inside the override).
        with timezone.override(zoneinfo.ZoneInfo(store_zone)):
            response = super().change_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render"):
                response.render()
        return response

    def _order_card(self, request, order: Order | None) -> dict:
        location = order.pickup_location if order is not None else None
        if location is None or not may_act_at(request.user, location.pk):
            return {}
        board = selectors.pickup_board(location_id=location.pk, show="all")
        cards = [card for column in ("to_prepare", "picking", "ready", "overdue")
                 for card in board[column] if card.pk == order.pk]  # fmt: skip
        self._with_payment_due(cards)
        return {
            "card": cards[0] if cards else None,
            "card_location": location,
            "card_next": request.path,
            **self._card_context(request, location),
        }

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "board_url": reverse("admin:orders_board")}
        return super().changelist_view(request, extra_context)


def _short_time(moment, location: Location | None) -> str:
    """A time in a list cell, on the store's clock (the pickup store's, else the server's)."""
    if moment is None:
        return "–"
    zone = zoneinfo.ZoneInfo(location.timezone) if location else None
    return date_format(timezone.localtime(moment, zone), "j M H:i")


def _board_stores(user):
    """The click & collect stores whose board the staff member may open."""
    allowed = staff_location_ids(user)
    stores = Location.objects.filter(is_active=True, allows_pickup=True).order_by("code")
    return stores if allowed is None else stores.filter(pk__in=allowed)


# What the associate reads when a line cannot be prepared (the values are the API's).
REJECTION_LABELS = [
    ("not_on_shelf", gettext_lazy("Not on the shelf (some or all units missing)")),
    ("damaged", gettext_lazy("Damaged (some or all units)")),
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

    @admin.display(description=gettext_lazy("Rules (first decides)"))
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
    """Returns are taken in any store, whatever the channel the order came from: staff find
    the order by its reference (or scan its pickup QR), choose the lines and whether each unit
    goes back on sale. Recorded returns are read-only; the refund goes to the original tender."""

    list_display = ["id", "order", "location", "refund_amount", "currency", "actor", "created_at"]
    list_filter = ["location"]
    search_fields = ["order__reference"]
    list_select_related = ["order", "location"]
    inlines = [ReturnLineInline]

    def has_view_permission(self, request, obj=None):
        user = request.user
        return user.has_perm("orders.view_return") or user.has_perm("orders.add_return")

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("orders.add_return")

    def get_queryset(self, request):
        """Staff see the returns taken at their locations and those of their stores' orders."""
        queryset = super().get_queryset(request)
        allowed = staff_location_ids(request.user)
        if allowed is None:
            return queryset
        return queryset.filter(
            Q(location_id__in=allowed)
            | Q(order__in=selectors.orders_for_locations(allowed).values("pk"))
        )

    def add_view(self, request, form_url="", extra_context=None):
        """Take a return: find the order, then choose the lines (orders.services.order_return)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        locations = _return_locations(request.user)
        if not locations:
            messages.error(request, _("You are not attached to a location that takes returns."))
            return redirect("admin:orders_return_changelist")
        found = request.POST.get("order") or request.GET.get("order", "")
        order = selectors.order_for_return(found) if found else None
        if found and order is None:
            messages.error(request, _("No order %(reference)s.") % {"reference": found[:40]})
        if request.method == "POST" and order is not None:
            record = self._take_return(request, order, locations)
            if record is not None:
                return redirect("admin:orders_return_change", record.pk)
        return TemplateResponse(
            request,
            "orders/admin/return_take.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Take a return"),
                "opts": self.model._meta,
                "found": found,
                "order": order,
                "returnable": selectors.returnable_lines(order) if order else [],
                "locations": locations,
                "location_id": _int(request.POST.get("location") or request.GET.get("location")),
                "reasons": RETURN_UNSELLABLE_REASONS,
                "form_key": request.POST.get("form_key") or admin_key("return"),
            },
        )

    def _take_return(self, request, order: Order, locations) -> Return | None:
        location_id = _int(request.POST.get("location"))
        if location_id not in {location.pk for location in locations}:
            messages.error(request, _("Choose the location that takes the return."))
            return None
        lines = []
        for line in selectors.returnable_lines(order):
            quantity = _int(request.POST.get(f"quantity_{line.line_no}")) or 0
            if quantity:
                unsellable = bool(request.POST.get(f"unsellable_{line.line_no}"))
                reason = request.POST.get(f"reason_{line.line_no}", "") if unsellable else ""
                if reason not in dict(RETURN_UNSELLABLE_REASONS):
                    reason = ""  # the service then asks for one
                lines.append(
                    services.ReturnLineRequest(
                        line_no=line.line_no,
                        quantity=quantity,
                        unsellable=unsellable,
                        reason=reason,
                    )
                )
        if not lines:
            messages.error(request, _("Enter how many units of a line come back."))
            return None
        recorded: list[Return] = []

        def take():
            recorded.append(
                services.order_return(
                    order_id=order.pk,
                    location_id=location_id,
                    lines=lines,
                    actor=admin_actor(request),
                    channel=SalesChannel.STORE,
                    idempotency_key=request.POST.get("form_key") or admin_key("return"),
                )
            )

        units = sum(line.quantity for line in lines)
        if not run_admin_service(
            request,
            take,
            _("Return of %(units)s unit(s) of %(reference)s recorded.")
            % {"units": units, "reference": order.reference},
        ):
            return None
        record = recorded[0]
        if record.refund_amount > 0:
            messages.info(
                request,
                _("%(amount)s %(currency)s is refunded to what the customer paid with.")
                % {"amount": record.refund_amount, "currency": record.currency},
            )
        return record


# Why a returned unit cannot go back on sale (ReturnLine.reason).
RETURN_UNSELLABLE_REASONS = [
    ("damaged", gettext_lazy("Damaged")),
    ("faulty", gettext_lazy("Faulty")),
    ("worn", gettext_lazy("Worn or soiled")),
]


def _return_locations(user):
    allowed = staff_location_ids(user)
    locations = Location.objects.filter(is_active=True).order_by("kind", "code")
    return list(locations if allowed is None else locations.filter(pk__in=allowed))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@admin.register(PendingNotification)
class PendingNotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Order messages not sent yet: normally none for more than a few seconds; rows with
    attempts and an error are failing (after the last attempt they stay here)."""

    list_display = ["id", "order", "kind", "attempts", "due_at", "last_error", "created_at"]
    list_filter = ["kind", "attempts"]
    search_fields = ["order__reference"]
    list_select_related = ["order"]


__all__ = ["OrderAdmin"]
