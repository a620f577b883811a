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

from common.channels import SalesChannel
from stores.models import Location


class Language(models.TextChoices):
    FR = "fr", "Français"
    EN = "en", "English"


class CustomerStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    MERGED = "merged", "Merged into another customer"
    ERASED = "erased", "Erased (GDPR)"


class Customer(models.Model):
    reference = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="Stable public reference, safe to store in other systems.",
    )
    number = models.CharField(
        max_length=10,
        unique=True,
        editable=False,
        help_text="Printed on receipts and loyalty cards: 9 digits + Luhn check digit.",
    )
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    name_key = models.CharField(
        max_length=200,
        blank=True,
        db_index=True,
        editable=False,
        help_text="Lower-case, accent-free 'first last', for duplicate detection.",
    )
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.FR)
    preferred_store = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=CustomerStatus.choices, default=CustomerStatus.ACTIVE
    )
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="absorbed_customers"
    )
    created_channel = models.CharField(max_length=20, choices=SalesChannel.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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
    LOYALTY_CARD = "loyalty_card", "Loyalty card"
    EXTERNAL = "external", "External id"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"


class CustomerIdentifier(models.Model):
    """Something that points at one customer. `source` is empty except for external ids, where it
    names the system ("ecommerce", "crm", "pos:PARIS01")."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identifiers")
    kind = models.CharField(max_length=16, choices=IdentifierKind.choices)
    source = models.CharField(max_length=40, blank=True, default="")
    value_normalised = models.CharField(max_length=254)
    value_raw = models.CharField(max_length=254)
    is_primary = models.BooleanField(default=False)
    created_channel = models.CharField(max_length=20, choices=SalesChannel.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    label = models.CharField(max_length=40, blank=True)
    line1 = models.CharField(max_length=200)
    line2 = models.CharField(max_length=200, blank=True)
    postcode = models.CharField(max_length=12, blank=True, db_index=True)
    city = models.CharField(max_length=80, blank=True)
    country = models.CharField(max_length=2, default="FR")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "addresses"

    def __str__(self) -> str:
        return f"{self.line1}, {self.postcode} {self.city}"


class ConsentPurpose(models.TextChoices):
    MARKETING = "marketing", "Marketing"
    PERSONALISATION = "personalisation", "Personalisation"
    ANALYTICS = "analytics", "Analytics"


class ConsentChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push notification"
    POST = "post", "Post"


class ConsentEvent(models.Model):
    """Append-only: one decision of the person, never updated or deleted. Erasure keeps it (the
    proof of what was consented when), linked to the anonymised record, and closes it with a
    withdrawal of every consent still granted."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consent_events")
    purpose = models.CharField(max_length=20, choices=ConsentPurpose.choices)
    channel = models.CharField(max_length=10, choices=ConsentChannel.choices)
    granted = models.BooleanField()
    wording_version = models.CharField(
        max_length=40, help_text="Version of the text the person agreed to or refused."
    )
    sales_channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    actor = models.CharField(max_length=120)
    occurred_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["customer", "-occurred_at", "-id"])]

    def __str__(self) -> str:
        return f"{self.purpose}/{self.channel} {'granted' if self.granted else 'refused'}"


class Consent(models.Model):
    """Current consent state: a cache of the latest ConsentEvent per (customer, purpose, channel),
    written in the same transaction as the event. `selectors.consent_cache_mismatches` proves it
    equals the log."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=20, choices=ConsentPurpose.choices)
    channel = models.CharField(max_length=10, choices=ConsentChannel.choices)
    granted = models.BooleanField()
    event = models.ForeignKey(ConsentEvent, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "purpose", "channel"], name="uniq_consent_state"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose}/{self.channel}: {'yes' if self.granted else 'no'}"


class CustomerEventKind(models.TextChoices):
    CREATED = "created", "Customer created"
    PROFILE_UPDATED = "profile_updated", "Profile updated"
    IDENTIFIER_ADDED = "identifier_added", "Identifier added"
    IDENTIFIER_REMOVED = "identifier_removed", "Identifier removed"
    MERGED = "merged", "Another record merged into this one"
    UNMERGED = "unmerged", "A merge was undone"


class CustomerEvent(models.Model):
    """The customers app's own history entries (the unified history merges in other apps')."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=24, choices=CustomerEventKind.choices)
    sales_channel = models.CharField(max_length=20, choices=SalesChannel.choices, blank=True)
    actor = models.CharField(max_length=120, blank=True)
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["customer", "-occurred_at", "-id"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.occurred_at:%Y-%m-%d %H:%M}"


class SuggestionStatus(models.TextChoices):
    OPEN = "open", "Open"
    MERGED = "merged", "Merged"
    DISMISSED = "dismissed", "Dismissed"


class MergeSuggestion(models.Model):
    """Two records that may be the same person, for customer service to decide.

    `customer_a` is always the older record (lower pk), so a pair has one spelling."""

    customer_a = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    customer_b = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    rule = models.CharField(
        max_length=40, help_text="Why they were suggested (see docs/customers.md)."
    )
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=SuggestionStatus.choices, default=SuggestionStatus.OPEN
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=120, blank=True)

    class Meta:
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

    survivor = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_received")
    absorbed = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_given")
    actor = models.CharField(max_length=120)
    reason = models.TextField(blank=True)
    automatic = models.BooleanField(default=False)
    forced = models.BooleanField(default=False, help_text="Merged despite blockers (see reason).")
    blockers_overridden = models.JSONField(default=list, blank=True)
    handler_results = models.JSONField(
        default=dict, blank=True, help_text="What each merge handler did, to reverse it."
    )
    merged_at = models.DateTimeField()
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.CharField(max_length=120, blank=True)
    unmerge_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-merged_at", "-id"]

    def __str__(self) -> str:
        return f"merge #{self.pk}: {self.absorbed_id} → {self.survivor_id}"


class CustomerMergeRow(models.Model):
    """One row moved by a merge: `model_label` pk `object_pk` had `field_name` = absorbed."""

    merge = models.ForeignKey(CustomerMerge, on_delete=models.CASCADE, related_name="rows")
    model_label = models.CharField(max_length=100)
    object_pk = models.CharField(max_length=64)
    field_name = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["model_label", "object_pk"])]

    def __str__(self) -> str:
        return f"{self.model_label}#{self.object_pk}.{self.field_name}"


class ErasureRecord(models.Model):
    """Proof that a person was erased: who, when, why, what was done. No personal data."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="erasures")
    actor = models.CharField(max_length=120)
    reason = models.TextField()
    sales_channel = models.CharField(max_length=20, choices=SalesChannel.choices, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="Counts per erasure handler.")
    erased_at = models.DateTimeField()

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
        help_text="Empty: applies to every kind.",
    )
    pattern = models.CharField(max_length=200)
    note = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind or 'any'}: {self.pattern}"
