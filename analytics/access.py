"""Who sees which KPIs: API keys with `reports:read` see every location (a head-office BI
tool); staff need the KPI permission and see the locations they work at (store managers their
store; head office, with every location, all of them)."""

from __future__ import annotations

from common.auth import ApiClient
from stores.access import staff_location_ids

KPI_PERMISSION = "analytics.view_kpis"


def report_location_ids(user) -> list[int] | None | bool:
    """None: every location; a list: those locations only; False: no KPIs at all."""
    if isinstance(user, ApiClient):
        return None  # HasScopes checked reports:read
    if not user.has_perm(KPI_PERMISSION):
        return False
    return staff_location_ids(user)
