"""Back office for stock. Quantities are never edited: staff act through forms that call the
stock services, and every change becomes a ledger movement."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from common.admin_utils import ReadOnlyAdminMixin, admin_actor, admin_key, run_admin_service
from inventory import access, services
from inventory.models import (
    AdjustmentReason,
    Reservation,
    ReservationStatus,
    Sku,
    StockCount,
    StockCountLine,
    StockMovement,
    StockOperation,
    StockPosition,
    TillDiscrepancy,
    Transfer,
    TransferLine,
    TransferStatus,
)
from stores.access import StaffLocationScopedAdmin, staff_location_ids
from stores.admin import LocationAdmin as StoreLocationAdmin
from stores.models import Location

# The location form's safety stock is stock configuration: it goes through the inventory
# service, which updates every position's safety stock and tells subscribers what changed.
admin.site.unregister(Location)


@admin.register(Location)
class LocationAdmin(StoreLocationAdmin):
    def save_model(self, request, obj, form, change):
        new_safety_stock = obj.safety_stock
        if change and "safety_stock" in form.changed_data:
            obj.safety_stock = form.initial["safety_stock"]  # the service sets it with positions
        super().save_model(request, obj, form, change)
        if not change or "safety_stock" in form.changed_data:
            run_admin_service(
                request,
                lambda: services.safety_stock_set(location_id=obj.pk, quantity=new_safety_stock),
                _("Safety stock of %(location)s set to %(quantity)s.")
                % {"location": obj.code, "quantity": new_safety_stock},
            )


@admin.register(Sku)
class SkuAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "barcode", "category", "is_active"]
    list_filter = ["category", "is_active"]
    search_fields = ["code", "name", "barcode"]


class ReceiveForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput)
    quantity = forms.IntegerField(min_value=1, max_value=100_000, label=gettext_lazy("Quantity"))
    reference = forms.CharField(
        max_length=120,
        required=False,
        label=gettext_lazy("Reference"),
        help_text=gettext_lazy("Delivery note number."),
    )


class AdjustForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput)
    delta = forms.IntegerField(
        min_value=-100_000,
        max_value=100_000,
        label=gettext_lazy("Quantity change"),
        help_text=gettext_lazy("Signed: +2 found, −1 lost."),
    )
    reason = forms.ChoiceField(choices=AdjustmentReason.choices, label=gettext_lazy("Reason"))
    note = forms.CharField(max_length=255, required=False, label=gettext_lazy("Note"))

    def clean_delta(self):
        if self.cleaned_data["delta"] == 0:
            raise forms.ValidationError(_("0 changes nothing."))
        return self.cleaned_data["delta"]


class CountForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput)
    counted = forms.IntegerField(
        min_value=0,
        max_value=100_000,
        label=gettext_lazy("Counted"),
        help_text=gettext_lazy("Units on the shelf."),
    )


class TransferRequestForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput)
    destination = forms.ModelChoiceField(
        queryset=Location.objects.filter(is_active=True, receives_transfers=True),
        label=gettext_lazy("Destination"),
    )
    quantity = forms.IntegerField(min_value=1, max_value=100_000, label=gettext_lazy("Quantity"))
    reference = forms.CharField(max_length=120, required=False, label=gettext_lazy("Reference"))


class SetAsideForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput)
    quantity = forms.IntegerField(min_value=1, max_value=100_000, label=gettext_lazy("Quantity"))
    action = forms.ChoiceField(
        label=gettext_lazy("What to do"),
        choices=[
            ("set_aside", gettext_lazy("Set aside as unsellable")),
            ("restore", gettext_lazy("Back to sellable")),
            ("write_off", gettext_lazy("Write off unsellable units")),
        ],
    )
    reason = forms.ChoiceField(
        choices=AdjustmentReason.choices,
        initial=AdjustmentReason.DAMAGE,
        label=gettext_lazy("Reason"),
    )


class StockWritePermissions:
    """The stock actions the admin offers a staff member: the rule of `inventory.access`, the
    same as the stock API's with a staff session (Django asks `has_<name>_permission` for an
    action's `allowed_permissions`)."""

    def has_receive_stock_permission(self, request):
        return access.staff_may(request.user, "receive")

    def has_adjust_stock_permission(self, request):
        return access.staff_may(request.user, "adjust")

    def has_count_stock_permission(self, request):
        return access.staff_may(request.user, "count")

    def has_move_stock_permission(self, request):
        return access.staff_may(request.user, "transfer")

    def has_settle_reservation_permission(self, request):
        return access.staff_may(request.user, "settle_reservation")


def _position_form_action(title: str, form_class, apply, stock_action: str):
    """An admin action with an intermediate form, applied to each selected position."""

    def action(modeladmin, request, queryset):
        positions = list(queryset.select_related("sku", "location"))
        if not access.staff_may_at(request.user, stock_action, [p.location_id for p in positions]):
            raise PermissionDenied
        if request.POST.get("apply"):
            form = form_class(request.POST)
            if form.is_valid():
                for index, position in enumerate(positions):
                    data = dict(form.cleaned_data)
                    data["idempotency_key"] = f"{data['idempotency_key']}:{position.pk}:{index}"
                    run_admin_service(
                        request,
                        lambda p=position, d=data: apply(request, p, d),
                        _("%(action)s: %(sku)s at %(location)s done.")
                        % {
                            "action": title,
                            "sku": position.sku.code,
                            "location": position.location.code,
                        },
                    )
                return None
        else:
            form = form_class(initial={"idempotency_key": admin_key(action.__name__)})
        return TemplateResponse(
            request,
            "admin/inventory/stock_form.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": title,
                "form": form,
                "positions": positions,
                "selected": [p.pk for p in positions],
                "action": action.__name__,
            },
        )

    action.short_description = title
    action.allowed_permissions = (_PERMISSION_OF[stock_action],)
    return action


_PERMISSION_OF = {
    "receive": "receive_stock",
    "adjust": "adjust_stock",
    "set_aside": "adjust_stock",
    "count": "count_stock",
    "transfer": "move_stock",
}


def _receive(request, position, data):
    services.stock_receive(
        location_id=position.location_id,
        lines=[(position.sku_id, data["quantity"])],
        reference=data["reference"],
        idempotency_key=data["idempotency_key"],
        actor=admin_actor(request),
    )


def _adjust(request, position, data):
    services.stock_adjust(
        location_id=position.location_id,
        sku_id=position.sku_id,
        delta=data["delta"],
        reason=data["reason"],
        note=data["note"],
        idempotency_key=data["idempotency_key"],
        actor=admin_actor(request),
    )


def _count(request, position, data):
    services.stock_count_apply(
        location_id=position.location_id,
        counts=[(position.sku_id, data["counted"])],
        idempotency_key=data["idempotency_key"],
        actor=admin_actor(request),
    )


def _set_aside(request, position, data):
    services.stock_set_aside(
        location_id=position.location_id,
        sku_id=position.sku_id,
        quantity=data["quantity"],
        reason=data["reason"],
        restore=data["action"] == "restore",
        write_off=data["action"] == "write_off",
        idempotency_key=data["idempotency_key"],
        actor=admin_actor(request),
    )


def _request_transfer(request, position, data):
    services.transfer_request(
        source_id=position.location_id,
        destination_id=data["destination"].pk,
        lines=[(position.sku_id, data["quantity"])],
        reference=data["reference"],
        idempotency_key=data["idempotency_key"],
        actor=admin_actor(request),
    )


receive_stock = _position_form_action(
    gettext_lazy("Receive stock"), ReceiveForm, _receive, "receive"
)
receive_stock.__name__ = "receive_stock"
adjust_stock = _position_form_action(
    gettext_lazy("Adjust stock (with a reason)"), AdjustForm, _adjust, "adjust"
)
adjust_stock.__name__ = "adjust_stock"
count_stock = _position_form_action(gettext_lazy("Record a count"), CountForm, _count, "count")
count_stock.__name__ = "count_stock"
set_aside_stock = _position_form_action(
    gettext_lazy("Unsellable units"), SetAsideForm, _set_aside, "set_aside"
)
set_aside_stock.__name__ = "set_aside_stock"
request_transfer = _position_form_action(
    gettext_lazy("Request a transfer to another location"),
    TransferRequestForm,
    _request_transfer,
    "transfer",
)
request_transfer.__name__ = "request_transfer"


@admin.register(StockPosition)
class StockPositionAdmin(StockWritePermissions, StaffLocationScopedAdmin, admin.ModelAdmin):
    list_display = [
        "sku",
        "location",
        "on_hand",
        "reserved",
        "unsellable",
        "incoming",
        "safety_stock",
        "available",
        "available_at_till",
        "updated_at",
    ]
    list_filter = ["location"]
    search_fields = ["sku__code", "sku__name", "location__code"]
    list_select_related = ["sku", "location"]
    readonly_fields = [
        "sku",
        "location",
        "on_hand",
        "reserved",
        "unsellable",
        "incoming",
        "safety_stock",
        "available",
        "available_at_till",
        "updated_at",
    ]
    fields = readonly_fields + ["safety_stock_override"]
    actions = [receive_stock, adjust_stock, count_stock, set_aside_stock, request_transfer]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # The one editable field goes through the service (it changes online availability).
        if "safety_stock_override" in form.changed_data:
            run_admin_service(
                request,
                lambda: services.safety_stock_set(
                    location_id=obj.location_id,
                    sku_id=obj.sku_id,
                    quantity=obj.safety_stock_override,
                ),
                _("Safety stock override saved."),
            )


@admin.register(StockMovement)
class StockMovementAdmin(StaffLocationScopedAdmin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "occurred_at",
        "kind",
        "reason",
        "sku",
        "location",
        "quantity",
        "on_hand_delta",
        "reserved_delta",
        "unsellable_delta",
        "incoming_delta",
        "operation_reference",
    ]
    list_filter = ["kind", "reason", "location"]
    search_fields = ["sku__code", "operation__reference", "operation__idempotency_key"]
    list_select_related = ["sku", "location", "operation"]
    date_hierarchy = "occurred_at"

    @admin.display(description=gettext_lazy("reference"))
    def operation_reference(self, movement):
        return movement.operation.reference


class MovementInline(admin.TabularInline):
    model = StockMovement
    fields = [
        "kind",
        "sku",
        "location",
        "quantity",
        "on_hand_delta",
        "reserved_delta",
        "unsellable_delta",
        "incoming_delta",
        "occurred_at",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(StockOperation)
class StockOperationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "created_at", "kind", "channel", "actor", "reference", "idempotency_key"]
    list_filter = ["kind", "channel"]
    search_fields = ["idempotency_key", "reference", "actor"]
    inlines = [MovementInline]


@admin.action(
    description=gettext_lazy("Release the selected reservations"),
    permissions=["settle_reservation"],
)
def release_reservations(modeladmin, request, queryset):
    for reservation in queryset.filter(status=ReservationStatus.ACTIVE):
        if not access.staff_may_at(request.user, "settle_reservation", [reservation.location_id]):
            messages.error(
                request,
                _("Reservation %(id)s is not at one of your stores.") % {"id": reservation.pk},
            )
            continue
        run_admin_service(
            request,
            lambda r=reservation: services.reservation_release(
                reservation_id=r.pk,
                idempotency_key=admin_key(f"release-{r.pk}"),
                actor=admin_actor(request),
                reason="released by staff",
            ),
            _("Reservation %(id)s released.") % {"id": reservation.pk},
        )


@admin.register(Reservation)
class ReservationAdmin(
    StockWritePermissions, StaffLocationScopedAdmin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = [
        "id",
        "sku",
        "location",
        "quantity",
        "committed_quantity",
        "released_quantity",
        "status",
        "channel",
        "reference",
        "expires_at",
        "created_at",
    ]
    list_filter = ["status", "channel", "location"]
    search_fields = ["reference", "sku__code"]
    list_select_related = ["sku", "location"]
    actions = [release_reservations]

    def has_change_permission(self, request, obj=None):
        return obj is None  # the changelist (and its actions), never the edit form


class TransferLineInline(admin.TabularInline):
    model = TransferLine
    extra = 0
    readonly_fields = [
        "sku",
        "quantity_requested",
        "quantity_shipped",
        "quantity_received",
        "discrepancy",
    ]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description=gettext_lazy("Ship as requested"), permissions=["move_stock"])
def ship_transfers(modeladmin, request, queryset):
    for transfer in queryset.filter(status=TransferStatus.REQUESTED):
        if not access.staff_may_at(request.user, "transfer", [transfer.source_id]):
            messages.error(
                request,
                _("Transfer %(id)s does not leave one of your stores.") % {"id": transfer.pk},
            )
            continue
        run_admin_service(
            request,
            lambda t=transfer: services.transfer_ship_with_owner(
                transfer_id=t.pk, idempotency_key=f"admin:ship:{t.pk}", actor=admin_actor(request)
            ),
            _("Transfer %(id)s shipped.") % {"id": transfer.pk},
        )


@admin.action(
    description=gettext_lazy("Receive everything shipped and close"), permissions=["move_stock"]
)
def receive_transfers(modeladmin, request, queryset):
    for transfer in queryset.filter(
        status__in=[TransferStatus.SHIPPED, TransferStatus.PARTIALLY_RECEIVED]
    ):
        if not access.staff_may_at(request.user, "transfer", [transfer.destination_id]):
            messages.error(
                request,
                _("Transfer %(id)s does not reach one of your stores.") % {"id": transfer.pk},
            )
            continue
        received = {
            line.sku_id: max(line.quantity_shipped - line.quantity_received, 0)
            for line in transfer.lines.all()
        }
        run_admin_service(
            request,
            lambda t=transfer, r=received: services.transfer_receive_with_owner(
                transfer_id=t.pk,
                received=r,
                close=True,
                idempotency_key=f"admin:receive-all:{t.pk}",
                actor=admin_actor(request),
            ),
            _("Transfer %(id)s received.") % {"id": transfer.pk},
        )


@admin.register(Transfer)
class TransferAdmin(StockWritePermissions, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Transfers are requested from the stock positions list (action "Request a transfer") or
    the API; shipping and receiving are actions that move the ledger."""

    list_display = [
        "id",
        "source",
        "destination",
        "status",
        "reference",
        "created_at",
        "shipped_at",
        "received_at",
    ]
    list_filter = ["status", "source", "destination"]
    search_fields = ["reference"]
    inlines = [TransferLineInline]
    actions = [ship_transfers, receive_transfers]

    def has_change_permission(self, request, obj=None):
        return obj is None  # the changelist and its actions

    def get_queryset(self, request):
        # Staff see the transfers that leave or reach their stores.
        queryset = super().get_queryset(request)
        allowed = staff_location_ids(request.user)
        if allowed is None:
            return queryset
        return queryset.filter(Q(source__in=allowed) | Q(destination__in=allowed))


@admin.register(StockCount)
class StockCountAdmin(StaffLocationScopedAdmin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The counts recorded at the staff member's locations (action "Record a count" on the
    stock positions), newest first, with who counted and what differed."""

    list_display = ["id", "location", "counted_at", "counted_by", "lines_off"]
    list_filter = ["location"]
    list_select_related = ["location", "operation"]
    ordering = ["-counted_at", "-pk"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(lines_off=Count("lines", filter=~Q(lines__difference=0)))
        )

    @admin.display(description=gettext_lazy("counted by"))
    def counted_by(self, count):
        return count.operation.actor.removeprefix("staff:")

    @admin.display(description=gettext_lazy("lines with a difference"), ordering="lines_off")
    def lines_off(self, count):
        return count.lines_off

    class LineInline(admin.TabularInline):
        model = StockCountLine
        readonly_fields = ["sku", "expected", "counted", "difference"]
        extra = 0
        can_delete = False

        def has_add_permission(self, request, obj=None):
            return False

    inlines = [LineInline]


@admin.register(TillDiscrepancy)
class TillDiscrepancyAdmin(StaffLocationScopedAdmin, admin.ModelAdmin):
    staff_location_field = "movement__location"
    list_display = ["id", "movement", "on_hand_after", "sellable_after", "resolved", "created_at"]
    list_filter = ["resolved"]
    readonly_fields = ["movement", "on_hand_after", "sellable_after", "created_at"]

    def has_add_permission(self, request):
        return False
