"""The apps stand in layers; each imports only from the layers below it (module-level and
function-level imports alike), so no import cycle between apps can come back.

    common (with the outbox) → stores → inventory, customers → loyalty, notifications
    → payments → orders → integrations → analytics (reads them all, written by none) → demo

Apps on one floor do not import each other. `config` (settings, URLs, Celery) sits above all.
A failure names the file, the line and the import that broke the rule.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = [
    {"common"},
    {"stores"},
    {"inventory", "customers"},
    {"loyalty", "notifications"},
    {"payments"},
    {"orders"},
    {"integrations"},
    {"analytics"},
    {"demo"},
]
FLOOR = {app: floor for floor, apps in enumerate(LAYERS) for app in apps}


def imports_of(path: Path):
    """(line, imported module, imported names) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def app_sources(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def violations(app: str) -> list[str]:
    found = []
    for path in app_sources(app):
        for line, module, names in imports_of(path):
            target = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if target in FLOOR and target != app:
                if FLOOR[target] >= FLOOR[app]:
                    found.append(f"{where}: {target} is not below {app}")
                private = [n for n in names if n.startswith("_")]
                if private:
                    found.append(f"{where}: another app's private {', '.join(private)}")
    return found


@pytest.mark.parametrize("app", sorted(FLOOR))
def test_an_app_imports_only_from_the_layers_below_it(app):
    assert violations(app) == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The rules are not vacuous: the ledger importing orders, another app's private name, and
    imports hidden in a function are reported."""
    fake_root = tmp_path
    (fake_root / "inventory").mkdir()
    (fake_root / "inventory" / "ledger.py").write_text(
        "def f():\n    from orders.services import order_place\n    from stores._x import _y\n"
    )
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", fake_root)

    assert violations("inventory") == [
        "inventory/ledger.py:2 imports orders.services: orders is not below inventory",
        "inventory/ledger.py:3 imports stores._x: another app's private _y",
    ]
    assert function_level_imports("inventory") == [
        "inventory/ledger.py:2 imports orders.services inside f()",
        "inventory/ledger.py:3 imports stores._x inside f()",
    ]


def test_every_app_is_placed_on_a_floor():
    apps = {p.parent.name for p in ROOT.glob("*/apps.py")}
    assert apps == set(FLOOR)


def function_level_imports(app: str) -> list[str]:
    """Project imports made inside a function, except in AppConfig.ready() (where Django wants
    models and signal receivers imported). One elsewhere dodges a cycle: the code is on the
    wrong floor, or should hand work over by name (common.tasks) or through a registry."""
    found = []
    for path in app_sources(app):
        if path.name == "apps.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                module = (
                    node.module
                    if isinstance(node, ast.ImportFrom)
                    else node.names[0].name
                    if isinstance(node, ast.Import)
                    else None
                )
                if module and module.split(".")[0] in FLOOR:
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.append(f"{where} imports {module} inside {function.name}()")
    return found


@pytest.mark.parametrize("app", sorted(FLOOR))
def test_project_imports_stand_at_the_top_of_the_module(app):
    assert function_level_imports(app) == []
