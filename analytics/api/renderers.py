"""CSV for a KPI table (`?format=csv` or `Accept: text/csv`): a header of column labels, one
line per row — what a head of retail opens in a spreadsheet."""

import csv
import io

from rest_framework.renderers import BaseRenderer


class KpiCsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        writer = csv.writer(out)
        if not isinstance(data, dict) or "columns" not in data:  # an error body
            writer.writerow(["code", "message"])
            writer.writerow([(data or {}).get("code", ""), (data or {}).get("message", "")])
            return out.getvalue().encode()
        keys = [column["key"] for column in data["columns"]]
        writer.writerow([column["label"] for column in data["columns"]])
        for row in data["rows"]:
            writer.writerow(["" if row.get(key) is None else row.get(key) for key in keys])
        return out.getvalue().encode()
