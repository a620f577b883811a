"""Small input/output serializers for the customer API (validation of shape only: the rules live
in customers.services)."""

from rest_framework import serializers

from customers.models import (
    ConsentChannel,
    ConsentPurpose,
    Customer,
    CustomerIdentifier,
    IdentifierKind,
    Language,
)

_KINDS = "One of: " + ", ".join(IdentifierKind.values) + "."

# ---- output ----------------------------------------------------------------------------------


class IdentifierSerializer(serializers.ModelSerializer):
    value = serializers.CharField(source="value_normalised")
    kind = serializers.CharField(help_text=_KINDS)
    created_channel = serializers.CharField(help_text="Sales channel that added it.")

    class Meta:
        model = CustomerIdentifier
        fields = ["id", "kind", "source", "value", "is_primary", "created_channel", "created_at"]


class CustomerSummarySerializer(serializers.ModelSerializer):
    """What a till needs after a scan: who it is, in a few fields."""

    preferred_store = serializers.SlugRelatedField(slug_field="code", read_only=True)
    status = serializers.CharField(help_text="active, merged or erased.")

    class Meta:
        model = Customer
        fields = [
            "reference",
            "number",
            "first_name",
            "last_name",
            "language",
            "preferred_store",
            "status",
        ]


class AddressSerializer(serializers.Serializer):
    label = serializers.CharField()
    line1 = serializers.CharField()
    line2 = serializers.CharField()
    postcode = serializers.CharField()
    city = serializers.CharField()
    country = serializers.CharField()


class CustomerDetailSerializer(CustomerSummarySerializer):
    created_channel = serializers.CharField()
    identifiers = IdentifierSerializer(many=True, read_only=True)
    addresses = AddressSerializer(many=True, read_only=True)

    class Meta(CustomerSummarySerializer.Meta):
        fields = [
            *CustomerSummarySerializer.Meta.fields,
            "created_channel",
            "created_at",
            "updated_at",
            "identifiers",
            "addresses",
        ]


class ParsedIdentifierSerializer(serializers.Serializer):
    kind = serializers.CharField()
    source = serializers.CharField()
    value = serializers.CharField()


class ResolveResponseSerializer(serializers.Serializer):
    customer = CustomerSummarySerializer()
    matched_by = ParsedIdentifierSerializer()
    other_customers = serializers.ListField(
        child=serializers.UUIDField(), help_text="Lower-priority matches (other people)."
    )


class IdentifyResponseSerializer(serializers.Serializer):
    customer = CustomerSummarySerializer()
    created = serializers.BooleanField()
    matched_by = ParsedIdentifierSerializer(allow_null=True)
    attached = ParsedIdentifierSerializer(many=True)
    ignored = serializers.ListField(
        child=serializers.CharField(), help_text="Placeholder values that were ignored (as sent)."
    )
    conflicts = ParsedIdentifierSerializer(
        many=True,
        help_text="Identifiers that belong to someone else: "
        "not moved, a merge suggestion was recorded.",
    )


class ConsentStateSerializer(serializers.Serializer):
    purpose = serializers.CharField()
    channel = serializers.CharField()
    granted = serializers.BooleanField()
    wording_version = serializers.CharField(allow_null=True)
    changed_at = serializers.DateTimeField(allow_null=True)
    sales_channel = serializers.CharField(allow_null=True)


class HistoryEntrySerializer(serializers.Serializer):
    occurred_at = serializers.DateTimeField()
    provider = serializers.CharField()
    kind = serializers.CharField()
    summary = serializers.CharField()
    sales_channel = serializers.CharField()
    data = serializers.DictField()


class HistoryPageSerializer(serializers.Serializer):
    results = HistoryEntrySerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ErasureResponseSerializer(serializers.Serializer):
    reference = serializers.UUIDField()
    status = serializers.CharField()
    erased_at = serializers.DateTimeField()
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="What the person lost, e.g. forfeited points."
    )
    summary = serializers.DictField()


# ---- input -----------------------------------------------------------------------------------


class ExternalIdInputSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=40, help_text="e.g. ecommerce, crm, pos:PARIS01")
    id = serializers.CharField(max_length=128)


class IdentifyInputSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        help_text="E.164, or French national form (06 12 34 56 78).",
    )
    loyalty_card = serializers.CharField(max_length=40, required=False, allow_blank=True)
    external_ids = ExternalIdInputSerializer(many=True, required=False)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    language = serializers.ChoiceField(choices=Language.choices, required=False)
    preferred_store = serializers.CharField(
        max_length=20, required=False, help_text="Location code."
    )

    def identifiers(self) -> list[tuple[str, str, str]]:
        data = self.validated_data
        items = [
            (kind, data[field], "")
            for kind, field in (
                (IdentifierKind.LOYALTY_CARD, "loyalty_card"),
                (IdentifierKind.EMAIL, "email"),
                (IdentifierKind.PHONE, "phone"),
            )
            if field in data
        ]
        items += [
            (IdentifierKind.EXTERNAL, ext["id"], ext["source"])
            for ext in data.get("external_ids", [])
        ]
        return items


class ProfileUpdateSerializer(serializers.Serializer):
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    language = serializers.ChoiceField(choices=Language.choices, required=False)
    preferred_store = serializers.CharField(
        max_length=20, required=False, allow_null=True, help_text="Location code, or null to clear."
    )


class IdentifierInputSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=16, help_text=_KINDS)
    value = serializers.CharField(max_length=254)
    source = serializers.CharField(
        max_length=40, required=False, default="", help_text="Required for external ids."
    )
    is_primary = serializers.BooleanField(default=False)


class ConsentChangeSerializer(serializers.Serializer):
    purpose = serializers.ChoiceField(choices=ConsentPurpose.choices)
    channel = serializers.CharField(
        max_length=10, help_text="One of: " + ", ".join(ConsentChannel.values) + "."
    )
    granted = serializers.BooleanField()
    wording_version = serializers.CharField(max_length=40)


class ConsentInputSerializer(serializers.Serializer):
    changes = ConsentChangeSerializer(many=True, allow_empty=False)


class ErasureInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500, help_text="Why (e.g. the ticket of the request); no personal data."
    )


class MergeInputSerializer(serializers.Serializer):
    survivor = serializers.CharField(max_length=64, help_text="Reference (UUID) or number.")
    absorbed = serializers.CharField(max_length=64, help_text="The duplicate that is absorbed.")
    reason = serializers.CharField(max_length=1000, help_text="Why (kept in the merge journal).")
    force = serializers.BooleanField(
        default=False,
        help_text="Merge despite blockers (two loyalty cards…); the reason must justify it.",
    )


class UnmergeInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)


class MergeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    survivor = serializers.UUIDField(source="survivor.reference")
    absorbed = serializers.UUIDField(source="absorbed.reference")
    actor = serializers.CharField()
    reason = serializers.CharField()
    forced = serializers.BooleanField()
    blockers_overridden = serializers.ListField(child=serializers.CharField())
    rows_moved = serializers.IntegerField(help_text="Rows of other apps moved to the survivor.")
    merged_at = serializers.DateTimeField()
    unmerged_at = serializers.DateTimeField(allow_null=True)
    unmerged_by = serializers.CharField()
    unmerge_reason = serializers.CharField()
