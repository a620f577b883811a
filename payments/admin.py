"""Back office for gift cards, store credit and tenders. Balances are never edited: staff issue,
block, adjust (with a reason) or credit through forms that call the services, and every change
is a ledger entry. Ledgers, holds, tenders and provider events are read-only."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy

from common.admin_utils import (
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    admin_actor,
    admin_key,
    run_admin_service,
)
from common.channels import SalesChannel
from common.money import CURRENCY_DECIMALS
from payments import codes
from payments.models import (
    EntryKind,
    GiftCard,
    GiftCardEntry,
    GiftCardHold,
    GiftCardSource,
    ProviderEvent,
    StoreCreditWallet,
    Tender,
    TenderEvent,
    WalletEntry,
    WalletHold,
)
from payments.services import stored_value as sv

_CURRENCIES = [(c, c) for c in sorted(CURRENCY_DECIMALS)]


class _KeyedForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


class IssueForm(_KeyedForm):
    amount = forms.CharField(max_length=20, help_text=gettext_lazy("e.g. 25.00"))
    currency = forms.ChoiceField(choices=_CURRENCIES, initial="EUR")
    source = forms.ChoiceField(
        choices=[(GiftCardSource.GOODWILL, "Goodwill gesture"), (GiftCardSource.SOLD, "Sold")]
    )
    expires_at = forms.DateTimeField(
        required=False, help_text=gettext_lazy("Leave empty: no expiry.")
    )
    reference = forms.CharField(
        max_length=120, required=False, help_text=gettext_lazy("Sale or case number.")
    )
    reason = forms.CharField(max_length=255, required=False)


class ReasonForm(_KeyedForm):
    reason = forms.CharField(max_length=255)


class AdjustForm(_KeyedForm):
    amount = forms.CharField(
        max_length=20, help_text=gettext_lazy("Signed: 5.00 adds, -5.00 removes.")
    )
    reason = forms.CharField(max_length=255)


class GoodwillForm(_KeyedForm):
    amount = forms.CharField(max_length=20)
    reason = forms.CharField(max_length=255)


def _form_action(name: str, title: str, form_class, apply):
    """An admin action with an intermediate form, applied to each selected account; offered to
    staff who may change the accounts (balances, blocks) only."""

    def action(modeladmin, request, queryset):
        objects = list(queryset.order_by("pk"))
        if request.POST.get("apply"):
            form = form_class(request.POST)
            if form.is_valid():
                for obj in objects:
                    data = dict(form.cleaned_data)
                    data["idempotency_key"] = f"{data['idempotency_key']}:{obj.pk}"
                    run_admin_service(
                        request, lambda o=obj, d=data: apply(request, o, d), f"{title}: {obj} done."
                    )
                return None
        else:
            form = form_class(initial={"idempotency_key": admin_key(name)})
        return TemplateResponse(
            request,
            "admin/payments/action_form.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": title,
                "form": form,
                "objects": [str(o) for o in objects],
                "selected": [o.pk for o in objects],
                "action": name,
                "opts": modeladmin.model._meta,
            },
        )

    action.__name__ = name
    action.short_description = title
    action.allowed_permissions = ("change",)
    return action


def _block(request, card, data):
    sv.gift_card_block(card=card, actor=admin_actor(request), reason=data["reason"])


def _unblock(request, card, data):
    sv.gift_card_unblock(card=card, actor=admin_actor(request))


def _adjust(request, account, data):
    sv.balance_adjust(
        account=account,
        amount=data["amount"],
        reason=data["reason"],
        actor=admin_actor(request),
        idempotency_key=data["idempotency_key"],
    )


def _goodwill(request, wallet, data):
    sv.wallet_credit(
        customer=wallet.customer,
        amount=data["amount"],
        currency=wallet.currency,
        kind=EntryKind.GOODWILL,
        reason=data["reason"],
        actor=admin_actor(request),
        channel=SalesChannel.BACKOFFICE,
        idempotency_key=data["idempotency_key"],
    )


block_cards = _form_action("block_cards", "Block gift cards (with a reason)", ReasonForm, _block)
unblock_cards = _form_action("unblock_cards", "Unblock gift cards", ReasonForm, _unblock)
adjust_balances = _form_action(
    "adjust_balances", "Adjust balance (with a reason)", AdjustForm, _adjust
)
goodwill_credit = _form_action("goodwill_credit", "Credit goodwill", GoodwillForm, _goodwill)

_ENTRY_FIELDS = ["created_at", "kind", "amount", "balance_after", "channel", "actor", "reference"]
_HOLD_FIELDS = ["created_at", "status", "amount", "captured_amount", "refunded_amount"]


class GiftCardEntryInline(ReadOnlyInline):
    model = GiftCardEntry
    fields = [*_ENTRY_FIELDS, "reason"]
    readonly_fields = fields
    fk_name = "account"


class GiftCardHoldInline(ReadOnlyInline):
    model = GiftCardHold
    fields = [*_HOLD_FIELDS, "expires_at", "channel", "reference"]
    readonly_fields = fields


class WalletEntryInline(GiftCardEntryInline):
    model = WalletEntry


class WalletHoldInline(GiftCardHoldInline):
    model = WalletHold


_ACCOUNT_FIELDS = ["currency", "balance", "held", "available", "created_at", "updated_at"]


@admin.register(GiftCard)
class GiftCardAdmin(admin.ModelAdmin):
    """ "Add gift card" is the issue form: it shows the code once and never again."""

    list_display = ["masked_code", "currency", "balance", "held", "status", "expires_at", "source"]
    list_filter = ["status", "source", "currency", "issued_channel"]
    search_fields = ["code_last4", "reference"]
    readonly_fields = [
        "masked_code",
        *_ACCOUNT_FIELDS,
        "initial_balance",
        "status",
        "block_reason",
        "expires_at",
        "source",
        "issued_channel",
        "issued_by",
        "reference",
    ]
    fields = readonly_fields
    inlines = [GiftCardEntryInline, GiftCardHoldInline]
    actions = [block_cards, unblock_cards, adjust_balances]

    @admin.display(description=gettext_lazy("code"))
    def masked_code(self, card):
        return f"XXXX-XXXX-XXXX-{card.code_last4}"

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)  # the list and actions

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        # A full code typed by customer service finds its card by hash.
        normalised = codes.normalise(search_term)
        if normalised is not None:
            return queryset.filter(code_hash=codes.code_hash(normalised)), False
        return super().get_search_results(request, queryset, search_term)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:payments_giftcard_changelist"))
        if request.method == "POST":
            form = IssueForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                issued = []

                def issue():
                    issued.append(
                        sv.gift_card_issue(
                            amount=data["amount"],
                            currency=data["currency"],
                            source=data["source"],
                            expires_at=data["expires_at"],
                            reference=data["reference"],
                            reason=data["reason"],
                            channel=SalesChannel.BACKOFFICE,
                            actor=admin_actor(request),
                            idempotency_key=data["idempotency_key"],
                        )
                    )

                if run_admin_service(request, issue, "Gift card issued."):
                    result = issued[0]
                    if result.code:
                        messages.warning(
                            request,
                            f"Code: {codes.display(result.code)} — give it to the customer now; "
                            "it is not stored and will not be shown again.",
                        )
                    return HttpResponseRedirect(
                        reverse("admin:payments_giftcard_change", args=[result.card.pk])
                    )
        else:
            form = IssueForm(initial={"idempotency_key": admin_key("issue_gift_card")})
        return TemplateResponse(
            request,
            "admin/payments/action_form.html",
            {
                **self.admin_site.each_context(request),
                "title": "Issue a gift card",
                "form": form,
                "opts": self.model._meta,
            },
        )


@admin.register(StoreCreditWallet)
class StoreCreditWalletAdmin(admin.ModelAdmin):
    list_display = ["customer", "currency", "balance", "held", "updated_at"]
    list_filter = ["currency"]
    search_fields = ["customer__number", "customer__last_name"]
    list_select_related = ["customer"]
    readonly_fields = ["customer", *_ACCOUNT_FIELDS]
    fields = readonly_fields
    inlines = [WalletEntryInline, WalletHoldInline]
    actions = [goodwill_credit, adjust_balances]

    def has_add_permission(self, request):
        return False  # wallets open with their first credit

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False


class _EntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "account", *_ENTRY_FIELDS, "reason"]
    list_filter = ["kind", "channel"]
    search_fields = ["reference", "idempotency_key"]
    date_hierarchy = "created_at"


@admin.register(GiftCardEntry)
class GiftCardEntryAdmin(_EntryAdmin):
    pass


@admin.register(WalletEntry)
class WalletEntryAdmin(_EntryAdmin):
    list_select_related = ["account__customer"]


class _HoldAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["public_id", "account", *_HOLD_FIELDS, "expires_at", "channel", "reference"]
    list_filter = ["status", "channel"]
    search_fields = ["reference", "public_id"]


@admin.register(GiftCardHold)
class GiftCardHoldAdmin(_HoldAdmin):
    pass


@admin.register(WalletHold)
class WalletHoldAdmin(_HoldAdmin):
    pass


class TenderEventInline(ReadOnlyInline):
    model = TenderEvent
    fields = ["occurred_at", "kind", "amount", "data", "actor"]
    readonly_fields = fields


@admin.register(Tender)
class TenderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "order_reference",
        "kind",
        "status",
        "currency",
        "amount",
        "amount_authorised",
        "amount_captured",
        "amount_refunded",
        "provider",
        "provider_reference",
        "created_at",
    ]
    list_filter = ["kind", "status", "provider", "channel"]
    search_fields = ["order_reference", "provider_reference"]
    inlines = [TenderEventInline]


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["provider", "event_id", "event_type", "received_at", "processed_at", "outcome"]
    list_filter = ["provider", "event_type"]
    search_fields = ["event_id"]
