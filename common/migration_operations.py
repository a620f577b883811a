"""A migration operation for changes that never reach the database.

Marking every model and field name for translation changed ~700 `verbose_name`s and help
texts. As hundreds of `AlterField`s, the migration state re-rendered the related models once per
field, and `migrate` on a new database (every test run, every `make run`) took 25 s longer.
`RelabelModel` sets a model's labels in the state at once (one reload per model) and emits no
SQL — labels, help texts and choices are not in the schema.
"""

from django.db.migrations.operations.base import Operation


class RelabelModel(Operation):
    """Set a model's verbose names (options) and fields whose change is labels only."""

    reduces_to_sql = False
    reversible = True

    def __init__(self, name: str, options: dict | None = None, fields: list | None = None):
        self.name = name
        self.options = options or {}
        self.fields = fields or []

    def deconstruct(self):
        return (self.__class__.__qualname__, [], {
            "name": self.name, "options": self.options, "fields": self.fields,
        })  # fmt: skip

    def state_forwards(self, app_label, state):
        model_state = state.models[app_label, self.name.lower()]
        model_state.options.update(self.options)
        for field_name, field in self.fields:
            model_state.fields[field_name] = field
        state.reload_model(app_label, self.name.lower(), delay=True)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        pass  # labels are not in the schema

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return f"Relabel {self.name} and its fields (no database change)"

    @property
    def migration_name_fragment(self):
        return f"relabel_{self.name.lower()}"
