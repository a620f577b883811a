"""Customer service back office: find anyone by any identifier, see the whole record (360°),
merge candidates, undo a merge, erase. Every change calls a service; a refused one (DomainError)
becomes an admin error message."""

import contextlib
import re
import uuid

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy

from common.admin_utils import admin_actor, run_admin_service
from common.exceptions import DomainError
from customers import selectors, services
from customers.identifiers import customer_number_is_valid, parse_identifier
from customers.models import (
    Address,
    ConsentEvent,
    Customer,
    CustomerIdentifier,
    CustomerMerge,
    CustomerMergeRow,
    ErasureRecord,
    IdentifierKind,
    JunkIdentifierPattern,
    MergeSuggestion,
    SuggestionStatus,
)


def _link(obj, label=None):
    if obj is None:
        return "—"
    url = reverse(f"admin:customers_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


class _ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _form_action(name: str, title: str, form_class, apply, describe=None, permission="merge"):
    """An admin action with an intermediate form (reason, options), applied to the selection;
    offered with `permission` only (CustomerWritesAdmin)."""

    def action(modeladmin, request, queryset):
        objects = list(queryset)
        if request.POST.get("apply"):
            form = form_class(request.POST, objects=objects)
            if form.is_valid():
                apply(request, objects, form.cleaned_data)
                return None
        else:
            form = form_class(objects=objects)
        return TemplateResponse(
            request,
            "admin/customers/action_form.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": title,
                "form": form,
                "objects": [describe(o) if describe else str(o) for o in objects],
                "selected": [o.pk for o in objects],
                "action": name,
                "opts": modeladmin.model._meta,
            },
        )

    action.__name__ = name
    action.short_description = title
    action.allowed_permissions = (permission,)
    return action


class CustomerWritesAdmin:
    """What the customer actions need: merging (and undoing or dismissing merges) changes the
    records; a GDPR erasure is a deletion right."""

    def has_merge_permission(self, request):
        return request.user.has_perm("customers.change_customer")

    def has_erase_permission(self, request):
        return request.user.has_perm("customers.delete_customer")


class _ActionForm(forms.Form):
    def __init__(self, *args, objects=(), **kwargs):
        self.objects = objects
        super().__init__(*args, **kwargs)


class ReasonForm(_ActionForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=500,
        help_text=gettext_lazy("Recorded in the journal. No personal data."),
    )


class MergeForm(_ActionForm):
    survivor = forms.TypedChoiceField(
        coerce=int, help_text=gettext_lazy("The record that remains.")
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    force = forms.BooleanField(
        required=False,
        help_text=gettext_lazy(
            "Merge despite blockers (two loyalty cards, two e-commerce accounts…): "
            "a reason is required."
        ),
    )

    def __init__(self, *args, objects=(), **kwargs):
        super().__init__(*args, objects=objects, **kwargs)
        self.fields["survivor"].choices = [(c.pk, str(c)) for c in self._customers()]

    def _customers(self):
        ids = set()
        for obj in self.objects:
            if isinstance(obj, MergeSuggestion):
                ids |= {obj.customer_a_id, obj.customer_b_id}
            else:
                ids.add(obj.pk)
        return Customer.objects.filter(pk__in=ids).order_by("pk")

    def clean(self):
        data = super().clean()
        if len(self._customers()) != 2:
            raise forms.ValidationError("Select exactly two customers (or one suggestion).")
        return data


def _merge_apply(request, objects, data):
    customers = MergeForm(objects=objects)._customers()
    survivor = next(c for c in customers if c.pk == data["survivor"])
    absorbed = next(c for c in customers if c.pk != data["survivor"])
    run_admin_service(
        request,
        lambda: services.customer_merge(
            survivor=survivor,
            absorbed=absorbed,
            actor=admin_actor(request),
            reason=data["reason"],
            force=data["force"],
        ),
        f"{absorbed.number} merged into {survivor.number}.",
    )


# ---- customers -------------------------------------------------------------------------------


class IdentifierInline(_ReadOnly, admin.TabularInline):
    model = CustomerIdentifier
    fields = [
        "kind",
        "source",
        "value_normalised",
        "value_raw",
        "is_primary",
        "created_channel",
        "created_at",
    ]
    readonly_fields = fields
    extra = 0


class AddressInline(_ReadOnly, admin.TabularInline):
    model = Address
    fields = ["label", "line1", "line2", "postcode", "city", "country"]
    readonly_fields = fields
    extra = 0


class ConsentEventInline(_ReadOnly, admin.TabularInline):
    model = ConsentEvent
    verbose_name_plural = "consent log (append-only)"
    fields = [
        "occurred_at",
        "purpose",
        "channel",
        "granted",
        "wording_version",
        "sales_channel",
        "actor",
    ]
    readonly_fields = fields
    ordering = ["-occurred_at", "-pk"]
    extra = 0


def _erase_apply(request, objects, data):
    for customer in objects:
        run_admin_service(
            request,
            lambda c=customer: services.customer_erase(
                customer=c,
                actor=admin_actor(request),
                reason=data["reason"],
                sales_channel="backoffice",
            ),
            f"{customer.number} erased.",
        )


@admin.register(Customer)
class CustomerAdmin(CustomerWritesAdmin, admin.ModelAdmin):
    list_display = ["number", "first_name", "last_name", "status", "preferred_store", "created_at"]
    list_filter = ["status", "language", "created_channel"]
    search_fields = ["number", "first_name", "last_name"]
    search_help_text = (
        "Any identifier as typed (email, phone in any format, card, external id), "
        "a customer number, a reference, or a name."
    )
    fields = [
        "reference",
        "number",
        "status",
        "merged_into_link",
        "first_name",
        "last_name",
        "language",
        "preferred_store",
        "created_channel",
        "created_at",
        "updated_at",
        "erased_at",
        "consents_now",
        "unified_history",
        "merge_journal",
        "merge_candidates",
    ]
    readonly_fields = [
        "reference",
        "number",
        "status",
        "merged_into_link",
        "created_channel",
        "created_at",
        "updated_at",
        "erased_at",
        "consents_now",
        "unified_history",
        "merge_journal",
        "merge_candidates",
    ]
    inlines = [IdentifierInline, AddressInline, ConsentEventInline]
    list_select_related = ["preferred_store"]
    actions = [
        _form_action(
            "merge_customers", "Merge the two selected customers", MergeForm, _merge_apply
        ),
        _form_action(
            "erase_customers",
            "Erase selected customers (GDPR)",
            ReasonForm,
            _erase_apply,
            permission="erase",
        ),
    ]

    def has_add_permission(self, request):
        return False  # customers are created by identify-or-create

    def has_delete_permission(self, request, obj=None):
        return False  # use the erasure action: orders and payments keep their customer

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return results, may_have_duplicates
        query = Q(pk__in=results.values("pk"))
        identifier_q = Q()
        for kind in (IdentifierKind.EMAIL, IdentifierKind.PHONE, IdentifierKind.LOYALTY_CARD):
            try:
                ident = parse_identifier(kind, term)
            except DomainError:
                continue
            identifier_q |= Q(kind=kind, value_normalised=ident.value)
        identifier_q |= Q(kind=IdentifierKind.EXTERNAL, value_normalised=term)
        query |= Q(pk__in=CustomerIdentifier.objects.filter(identifier_q).values("customer_id"))
        with contextlib.suppress(ValueError):
            query |= Q(reference=uuid.UUID(term))
        compact = re.sub(r"\s", "", term)
        if customer_number_is_valid(compact):
            query |= Q(number=compact)
        return queryset.filter(query), may_have_duplicates

    def save_model(self, request, obj, form, change):
        changes = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in {"first_name", "last_name", "language", "preferred_store"}
        }
        try:
            services.customer_update(
                customer=obj, sales_channel="backoffice", actor=admin_actor(request), **changes
            )
        except DomainError as exc:
            messages.error(request, exc.message)

    @admin.display(description=gettext_lazy("merged into"))
    def merged_into_link(self, obj):
        return _link(obj.merged_into)

    @admin.display(description=gettext_lazy("consents (current state)"))
    def consents_now(self, obj):
        rows = selectors.consent_state(customer=obj)
        return format_html(
            "<table><tr><th>purpose</th><th>channel</th><th>granted</th><th>wording</th>"
            "<th>since</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        r["purpose"],
                        r["channel"],
                        "yes" if r["granted"] else "no",
                        r["wording_version"] or "—",
                        f"{r['changed_at']:%Y-%m-%d %H:%M}" if r["changed_at"] else "never asked",
                    )
                    for r in rows
                ),
            ),
        )

    @admin.display(description=gettext_lazy("history (newest 50, every channel)"))
    def unified_history(self, obj):
        page = selectors.customer_history(customer=obj, limit=50)
        if not page.entries:
            return "—"
        return format_html(
            "<table>{}</table>{}",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (e.occurred_at, e.provider, e.sales_channel or "", e.summary)
                    for e in page.entries
                ),
            ),
            "(more through the API)" if page.next_cursor else "",
        )

    @admin.display(description=gettext_lazy("merge journal"))
    def merge_journal(self, obj):
        merges = CustomerMerge.objects.filter(Q(survivor=obj) | Q(absorbed=obj)).select_related(
            "survivor", "absorbed"
        )
        if not merges:
            return "—"
        return format_html_join(
            "",
            "<div>{} — {} → {} by {}{}</div>",
            (
                (
                    _link(m, f"merge #{m.pk}"),
                    m.absorbed.number,
                    m.survivor.number,
                    m.actor,
                    " (undone)" if m.unmerged_at else "",
                )
                for m in merges
            ),
        )

    @admin.display(description=gettext_lazy("possible duplicates"))
    def merge_candidates(self, obj):
        suggestions = MergeSuggestion.objects.filter(
            Q(customer_a=obj) | Q(customer_b=obj), status=SuggestionStatus.OPEN
        )
        if not suggestions:
            return "—"
        return format_html_join(
            "",
            "<div>{} ({})</div>",
            ((_link(s, f"suggestion #{s.pk}"), s.rule) for s in suggestions),
        )


# ---- merge candidates and journal ------------------------------------------------------------


def _suggestion_merge_apply(request, objects, data):
    for suggestion in objects:
        _merge_apply(request, [suggestion], data)


def _dismiss(modeladmin, request, queryset):
    for suggestion in queryset:
        run_admin_service(
            request,
            lambda s=suggestion: services.merge_suggestion_dismiss(
                suggestion=s, actor=admin_actor(request)
            ),
            f"Suggestion #{suggestion.pk} dismissed.",
        )


_dismiss.allowed_permissions = ("merge",)
_dismiss.short_description = gettext_lazy("Dismiss (not the same person)")


def _merge_older_survives(modeladmin, request, queryset):
    for s in queryset.select_related("customer_a", "customer_b"):
        run_admin_service(
            request,
            lambda s=s: services.customer_merge(
                survivor=s.customer_a,
                absorbed=s.customer_b,
                actor=admin_actor(request),
                reason=f"suggestion #{s.pk} ({s.rule})",
            ),
            f"{s.customer_b.number} merged into {s.customer_a.number}.",
        )


_merge_older_survives.allowed_permissions = ("merge",)
_merge_older_survives.short_description = gettext_lazy("Merge (the older record survives)")


def _refresh_duplicates(modeladmin, request, queryset):
    created = services.duplicate_suggestions_refresh()
    messages.success(request, f"{created} new duplicate candidate(s) found.")


_refresh_duplicates.allowed_permissions = ("merge",)
_refresh_duplicates.short_description = gettext_lazy(
    "Look for new duplicate candidates (whole base)"
)


@admin.register(MergeSuggestion)
class MergeSuggestionAdmin(CustomerWritesAdmin, _ReadOnly, admin.ModelAdmin):
    list_display = ["pk", "customer_a_link", "customer_b_link", "rule", "status", "created_at"]
    list_filter = ["status", "rule"]
    readonly_fields = [
        "customer_a",
        "customer_b",
        "rule",
        "details",
        "status",
        "created_at",
        "resolved_at",
        "resolved_by",
    ]
    actions = [
        _merge_older_survives,
        _form_action(
            "merge_with_choice",
            "Merge… (choose the survivor, force with a reason)",
            MergeForm,
            _suggestion_merge_apply,
        ),
        _dismiss,
        _refresh_duplicates,
    ]

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list and its actions; rows change through services only

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer_a", "customer_b")

    @admin.display(description=gettext_lazy("customer A (older)"))
    def customer_a_link(self, obj):
        return _link(obj.customer_a)

    @admin.display(description=gettext_lazy("customer B"))
    def customer_b_link(self, obj):
        return _link(obj.customer_b)


class MergeRowInline(_ReadOnly, admin.TabularInline):
    model = CustomerMergeRow
    fields = ["model_label", "object_pk", "field_name"]
    readonly_fields = fields
    extra = 0


def _unmerge_apply(request, objects, data):
    for merge in objects:
        run_admin_service(
            request,
            lambda m=merge: services.customer_unmerge(
                merge=m, actor=admin_actor(request), reason=data["reason"]
            ),
            f"Merge #{merge.pk} undone.",
        )


@admin.register(CustomerMerge)
class CustomerMergeAdmin(CustomerWritesAdmin, _ReadOnly, admin.ModelAdmin):
    list_display = ["pk", "absorbed", "survivor", "actor", "forced", "merged_at", "unmerged_at"]
    list_filter = ["forced", "automatic"]
    readonly_fields = [
        "survivor",
        "absorbed",
        "actor",
        "reason",
        "automatic",
        "forced",
        "blockers_overridden",
        "handler_results",
        "merged_at",
        "unmerged_at",
        "unmerged_by",
        "unmerge_reason",
    ]
    inlines = [MergeRowInline]
    actions = [
        _form_action("unmerge", "Undo the selected merges (unmerge)", ReasonForm, _unmerge_apply)
    ]

    def has_change_permission(self, request, obj=None):
        return obj is None

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("survivor", "absorbed")


@admin.register(ErasureRecord)
class ErasureRecordAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["pk", "customer", "actor", "erased_at"]
    readonly_fields = ["customer", "actor", "reason", "sales_channel", "summary", "erased_at"]


class JunkPatternForm(forms.ModelForm):
    class Meta:
        model = JunkIdentifierPattern
        fields = ["kind", "pattern", "note", "is_active"]

    def clean_pattern(self):
        pattern = self.cleaned_data["pattern"]
        try:
            re.compile(pattern)
        except re.error as exc:
            raise forms.ValidationError(f"Not a regular expression: {exc}") from None
        return pattern


@admin.register(JunkIdentifierPattern)
class JunkIdentifierPatternAdmin(admin.ModelAdmin):
    form = JunkPatternForm
    list_display = ["pattern", "kind", "note", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
