"""The French catalogue is complete and compiled: every string the code marks for translation
has a French entry (nothing untranslated, nothing fuzzy), and the committed .mo is the .po
compiled, so a checkout serves French without compiling anything."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES"


def _gettext_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:  # Debian's gettext package: installed on this kind of machine
        pytest.fail(f"{name} (gettext) is missing: apt-get install gettext")
    return found


def _entries_without_translation(po: Path) -> str:
    msgattrib = _gettext_tool("msgattrib")
    found = []
    for flag in ("--untranslated", "--only-fuzzy"):
        out = subprocess.run(
            [msgattrib, flag, "--no-obsolete", str(po)], capture_output=True, text=True, check=True
        ).stdout
        entries = [block for block in out.split("\n\n") if 'msgid ""\nmsgstr ""\n"' not in block]
        found += [block for block in entries if block.strip()]
    return "\n\n".join(found)


def test_every_string_marked_in_the_code_has_a_french_translation(tmp_path):
    # makemessages on a copy of the checkout (it rewrites the catalogue it reads)
    tree = tmp_path / "tree"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=settings.BASE_DIR, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in files:
        if name.endswith((".py", ".html", ".txt", ".po")) and (settings.BASE_DIR / name).exists():
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(settings.BASE_DIR / name, target)
    _gettext_tool("xgettext")
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "fr", "--no-location",
         *[arg for d in ("tests", "bench", "scripts") for arg in ("-i", f"{d}/*")]],
        cwd=tree, capture_output=True, text=True, check=True,
    )  # fmt: skip
    missing = _entries_without_translation(tree / "locale/fr/LC_MESSAGES/django.po")
    assert not missing, f"translate these in locale/fr/LC_MESSAGES/django.po:\n{missing}"


def test_the_committed_catalogue_is_compiled(tmp_path):
    compiled = tmp_path / "django.mo"
    subprocess.run(
        [
            _gettext_tool("msgfmt"),
            "--check-format",
            "-o",
            str(compiled),
            str(CATALOGUE / "django.po"),
        ],
        check=True,
    )
    assert compiled.read_bytes() == (CATALOGUE / "django.mo").read_bytes(), "run `make messages`"
