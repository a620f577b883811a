"""The single customer reference (RCU, référentiel client unique).

A Customer is one person. Everything that identifies them (emails, phones, loyalty cards, ids in
other systems) is a CustomerIdentifier row, unique across all customers by (kind, source,
normalised value): an identifier belongs to at most one person, and resolving one is a single
indexed lookup.

Writes go through `customers.services`; reads with rules in them through `customers.selectors`.
Other apps plug into merge, export, erasure and history through `customers.registry`.
"""

import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from common.channels import SalesChannel
from stores.models import Location


class Language(models.TextChoices):
    FR = "fr", _("Français")
    EN = "en", _("English")


class CustomerStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    MERGED = "merged", _("Merged into another customer")
    ERASED = "erased", _("Erased (GDPR)")


class Customer(models.Model):
    reference = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text=_("Stable public reference, safe to store in other systems."),
        verbose_name=_("reference"),
    )
    number = models.CharField(
        max_length=10,
        unique=True,
        editable=False,
        help_text=_("Printed on receipts and loyalty cards: 9 digits + Luhn check digit."),
        verbose_name=_("number"),
    )
    first_name = models.CharField(max_length=100, blank=True, verbose_name=_("first name"))
    last_name = models.CharField(max_length=100, blank=True, verbose_name=_("last name"))
    name_key = models.CharField(
        max_length=200,
        blank=True,
        db_index=True,
        editable=False,
        help_text=_("Lower-case, accent-free 'first last', for duplicate detection."),
        verbose_name=_("name key"),
    )
    language = models.CharField(
        max_length=2, choices=Language.choices, default=Language.FR, verbose_name=_("language")
    )
    preferred_store = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("preferred store"),
    )
    status = models.CharField(
        max_length=10,
        choices=CustomerStatus.choices,
        default=CustomerStatus.ACTIVE,
        verbose_name=_("status"),
    )
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="absorbed_customers",
        verbose_name=_("merged into"),
    )
    created_channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, blank=True, verbose_name=_("created channel")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    erased_at = models.DateTimeField(null=True, blank=True, verbose_name=_("erased at"))

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(status=CustomerStatus.MERGED, merged_into__isnull=False)
                    | (~Q(status=CustomerStatus.MERGED) & Q(merged_into__isnull=True))
                ),
                name="customer_merged_iff_merged_into",
            ),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip() or "(no name)"
        return f"{self.number} – {name}"

    @property
    def is_active(self) -> bool:
        return self.status == CustomerStatus.ACTIVE


class IdentifierKind(models.TextChoices):
    LOYALTY_CARD = "loyalty_card", _("Loyalty card")
    EXTERNAL = "external", _("External id")
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")


class CustomerIdentifier(models.Model):
    """Something that points at one customer. `source` is empty except for external ids, where it
    names the system ("ecommerce", "crm", "pos:PARIS01")."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="identifiers", verbose_name=_("customer")
    )
    kind = models.CharField(max_length=16, choices=IdentifierKind.choices, verbose_name=_("kind"))
    source = models.CharField(max_length=40, blank=True, default="", verbose_name=_("source"))
    value_normalised = models.CharField(max_length=254, verbose_name=_("value normalised"))
    value_raw = models.CharField(max_length=254, verbose_name=_("value raw"))
    is_primary = models.BooleanField(default=False, verbose_name=_("is primary"))
    created_channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, blank=True, verbose_name=_("created channel")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("customer identifier")
        verbose_name_plural = _("customer identifiers")
        constraints = [
            # The rule "an identifier belongs to at most one customer", and the resolve index.
            models.UniqueConstraint(
                fields=["kind", "source", "value_normalised"], name="uniq_customer_identifier"
            ),
        ]
        indexes = [models.Index(fields=["customer", "kind"])]

    def __str__(self) -> str:
        source = f"{self.source}:" if self.source else ""
        return f"{self.get_kind_display()} {source}{self.value_normalised}"


class Address(models.Model):
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="addresses", verbose_name=_("customer")
    )
    label = models.CharField(max_length=40, blank=True, verbose_name=_("label"))
    line1 = models.CharField(max_length=200, verbose_name=_("line1"))
    line2 = models.CharField(max_length=200, blank=True, verbose_name=_("line2"))
    postcode = models.CharField(
        max_length=12, blank=True, db_index=True, verbose_name=_("postcode")
    )
    city = models.CharField(max_length=80, blank=True, verbose_name=_("city"))
    country = models.CharField(max_length=2, default="FR", verbose_name=_("country"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("address")
        verbose_name_plural = _("addresses")

    def __str__(self) -> str:
        return f"{self.line1}, {self.postcode} {self.city}"


class ConsentPurpose(models.TextChoices):
    MARKETING = "marketing", _("Marketing")
    PERSONALISATION = "personalisation", _("Personalisation")
    ANALYTICS = "analytics", _("Analytics")


class ConsentChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push notification")
    POST = "post", _("Post")


class ConsentEvent(models.Model):
    """Append-only: one decision of the person, never updated or deleted. Erasure keeps it (the
    proof of what was consented when), linked to the anonymised record, and closes it with a
    withdrawal of every consent still granted."""

    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="consent_events",
        verbose_name=_("customer"),
    )
    purpose = models.CharField(
        max_length=20, choices=ConsentPurpose.choices, verbose_name=_("purpose")
    )
    channel = models.CharField(
        max_length=10, choices=ConsentChannel.choices, verbose_name=_("channel")
    )
    granted = models.BooleanField(verbose_name=_("granted"))
    wording_version = models.CharField(
        max_length=40,
        help_text=_("Version of the text the person agreed to or refused."),
        verbose_name=_("wording version"),
    )
    sales_channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("sales channel")
    )
    actor = models.CharField(max_length=120, verbose_name=_("actor"))
    occurred_at = models.DateTimeField(db_index=True, verbose_name=_("occurred at"))

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent events")
        indexes = [models.Index(fields=["customer", "-occurred_at", "-id"])]

    def __str__(self) -> str:
        return f"{self.purpose}/{self.channel} {'granted' if self.granted else 'refused'}"


class Consent(models.Model):
    """Current consent state: a cache of the latest ConsentEvent per (customer, purpose, channel),
    written in the same transaction as the event. `selectors.consent_cache_mismatches` proves it
    equals the log."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="consents", verbose_name=_("customer")
    )
    purpose = models.CharField(
        max_length=20, choices=ConsentPurpose.choices, verbose_name=_("purpose")
    )
    channel = models.CharField(
        max_length=10, choices=ConsentChannel.choices, verbose_name=_("channel")
    )
    granted = models.BooleanField(verbose_name=_("granted"))
    event = models.ForeignKey(
        ConsentEvent, on_delete=models.CASCADE, related_name="+", verbose_name=_("event")
    )

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "purpose", "channel"], name="uniq_consent_state"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose}/{self.channel}: {'yes' if self.granted else 'no'}"


class CustomerEventKind(models.TextChoices):
    CREATED = "created", _("Customer created")
    PROFILE_UPDATED = "profile_updated", _("Profile updated")
    IDENTIFIER_ADDED = "identifier_added", _("Identifier added")
    IDENTIFIER_REMOVED = "identifier_removed", _("Identifier removed")
    MERGED = "merged", _("Another record merged into this one")
    UNMERGED = "unmerged", _("A merge was undone")


class CustomerEvent(models.Model):
    """The customers app's own history entries (the unified history merges in other apps')."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="events", verbose_name=_("customer")
    )
    kind = models.CharField(
        max_length=24, choices=CustomerEventKind.choices, verbose_name=_("kind")
    )
    sales_channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, blank=True, verbose_name=_("sales channel")
    )
    actor = models.CharField(max_length=120, blank=True, verbose_name=_("actor"))
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))

    class Meta:
        verbose_name = _("customer event")
        verbose_name_plural = _("customer events")
        indexes = [models.Index(fields=["customer", "-occurred_at", "-id"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.occurred_at:%Y-%m-%d %H:%M}"


class SuggestionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    MERGED = "merged", _("Merged")
    DISMISSED = "dismissed", _("Dismissed")


class MergeSuggestion(models.Model):
    """Two records that may be the same person, for customer service to decide.

    `customer_a` is always the older record (lower pk), so a pair has one spelling."""

    customer_a = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", verbose_name=_("customer a")
    )
    customer_b = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", verbose_name=_("customer b")
    )
    rule = models.CharField(
        max_length=40,
        help_text=_("Why they were suggested (see docs/customers.md)."),
        verbose_name=_("rule"),
    )
    details = models.JSONField(default=dict, blank=True, verbose_name=_("details"))
    status = models.CharField(
        max_length=10,
        choices=SuggestionStatus.choices,
        default=SuggestionStatus.OPEN,
        verbose_name=_("status"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))
    resolved_by = models.CharField(max_length=120, blank=True, verbose_name=_("resolved by"))

    class Meta:
        verbose_name = _("merge suggestion")
        verbose_name_plural = _("merge suggestions")
        constraints = [
            models.CheckConstraint(
                condition=Q(customer_a__lt=models.F("customer_b")),
                name="merge_suggestion_ordered_pair",
            ),
            models.UniqueConstraint(
                fields=["customer_a", "customer_b"],
                condition=Q(status="open"),
                name="uniq_open_merge_suggestion",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_a_id} ~ {self.customer_b_id} ({self.rule})"


class CustomerMerge(models.Model):
    """The merge journal: who merged which record into which, why, and exactly what moved."""

    survivor = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        related_name="merges_received",
        verbose_name=_("survivor"),
    )
    absorbed = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="merges_given", verbose_name=_("absorbed")
    )
    actor = models.CharField(max_length=120, verbose_name=_("actor"))
    reason = models.TextField(blank=True, verbose_name=_("reason"))
    automatic = models.BooleanField(default=False, verbose_name=_("automatic"))
    forced = models.BooleanField(
        default=False,
        help_text=_("Merged despite blockers (see reason)."),
        verbose_name=_("forced"),
    )
    blockers_overridden = models.JSONField(
        default=list, blank=True, verbose_name=_("blockers overridden")
    )
    handler_results = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("What each merge handler did, to reverse it."),
        verbose_name=_("handler results"),
    )
    merged_at = models.DateTimeField(verbose_name=_("merged at"))
    unmerged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("unmerged at"))
    unmerged_by = models.CharField(max_length=120, blank=True, verbose_name=_("unmerged by"))
    unmerge_reason = models.TextField(blank=True, verbose_name=_("unmerge reason"))

    class Meta:
        verbose_name = _("customer merge")
        verbose_name_plural = _("customer merges")
        ordering = ["-merged_at", "-id"]

    def __str__(self) -> str:
        return f"merge #{self.pk}: {self.absorbed_id} → {self.survivor_id}"


class CustomerMergeRow(models.Model):
    """One row moved by a merge: `model_label` pk `object_pk` had `field_name` = absorbed."""

    merge = models.ForeignKey(
        CustomerMerge, on_delete=models.CASCADE, related_name="rows", verbose_name=_("merge")
    )
    model_label = models.CharField(max_length=100, verbose_name=_("model label"))
    object_pk = models.CharField(max_length=64, verbose_name=_("object pk"))
    field_name = models.CharField(max_length=64, verbose_name=_("field name"))

    class Meta:
        verbose_name = _("customer merge row")
        verbose_name_plural = _("customer merge rows")
        indexes = [models.Index(fields=["model_label", "object_pk"])]

    def __str__(self) -> str:
        return f"{self.model_label}#{self.object_pk}.{self.field_name}"


class ErasureRecord(models.Model):
    """Proof that a person was erased: who, when, why, what was done. No personal data."""

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="erasures", verbose_name=_("customer")
    )
    actor = models.CharField(max_length=120, verbose_name=_("actor"))
    reason = models.TextField(verbose_name=_("reason"))
    sales_channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, blank=True, verbose_name=_("sales channel")
    )
    summary = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("Counts per erasure handler."),
        verbose_name=_("summary"),
    )
    erased_at = models.DateTimeField(verbose_name=_("erased at"))

    class Meta:
        verbose_name = _("erasure record")
        verbose_name_plural = _("erasure records")

    def __str__(self) -> str:
        return f"erasure of customer #{self.customer_id} at {self.erased_at:%Y-%m-%d}"


class JunkIdentifierPattern(models.Model):
    """Extra values that never identify anyone (on top of settings.CUSTOMERS_JUNK_VALUES).

    `pattern` is a regular expression matched (full match, case-insensitive) against both the
    value as typed (trimmed) and its normalised form."""

    kind = models.CharField(
        max_length=16,
        choices=IdentifierKind.choices,
        blank=True,
        help_text=_("Empty: applies to every kind."),
        verbose_name=_("kind"),
    )
    pattern = models.CharField(max_length=200, verbose_name=_("pattern"))
    note = models.CharField(max_length=200, blank=True, verbose_name=_("note"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("junk identifier pattern")
        verbose_name_plural = _("junk identifier patterns")

    def __str__(self) -> str:
        return f"{self.kind or 'any'}: {self.pattern}"
