"""What every KPI returns: a table (named columns, rows of plain values) that the API renders
as JSON or CSV and the dashboard draws."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    name: str
    title: str
    columns: list[tuple[str, str]]  # (key, label)
    rows: list[dict] = field(default_factory=list)
    notes: str = ""

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "title": str(self.title),
            "columns": [{"key": key, "label": str(label)} for key, label in self.columns],
            "rows": self.rows,
            "notes": str(self.notes),
        }
