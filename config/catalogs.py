"""The translation catalogs: extract, compile (pure Python), and find what is missing.

One catalog per language and domain under ``locale/`` (``LOCALE_PATHS``): the apps are one
product, so translators work on one file per language instead of one per app.

    python -m config.catalogs extract   # makemessages for de and zh_Hans (needs xgettext)
    python -m config.catalogs compile   # .po → .mo with polib (no gettext tools needed)
    python -m config.catalogs missing   # untranslated or fuzzy entries, per language

``make messages`` runs extract then compile.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
LANGUAGES = ["de", "zh_Hans"]
DOMAINS = ["django", "djangojs"]
SOURCES = ["campaigns", "config", "crm", "tagging", "templates"]
IGNORE = ["locale", "migrations", "admin_interface", "*.min.js"]


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()


@contextmanager
def _workdir(locale_dir: Path):
    """A directory holding links to the sources and nothing else, so that makemessages
    writes into ``locale_dir`` only (it writes beside any ``locale`` it finds)."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        for name in SOURCES:
            os.symlink(ROOT / name, Path(tmp) / name)
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(previous)


def extract(locale_dir: Path = LOCALE, languages: Iterable[str] = LANGUAGES) -> None:
    """Update ``locale_dir``'s .po files from the sources (Django's makemessages)."""
    _setup()
    from django.core.management import call_command
    from django.test.utils import override_settings

    locale_dir.mkdir(parents=True, exist_ok=True)
    with override_settings(LOCALE_PATHS=[str(locale_dir)]), _workdir(locale_dir):
        for domain in DOMAINS:
            call_command("makemessages", locale=list(languages), domain=domain,
                         symlinks=True, ignore_patterns=IGNORE, no_obsolete=True,
                         add_location="file", verbosity=0)


def po_path(language: str, domain: str, locale_dir: Path = LOCALE) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{domain}.po"


def compile_all(locale_dir: Path = LOCALE) -> list[Path]:
    """Write a .mo beside every .po (polib: no msgfmt needed); return the .mo paths."""
    import polib

    written = []
    for po_file in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        mo_file = po_file.with_suffix(".mo")
        polib.pofile(str(po_file)).save_as_mofile(str(mo_file))
        written.append(mo_file)
    return written


def untranslated(po_file: Path, *, only_from: Iterable[str] = ()) -> list[str]:
    """Msgids without a (non-fuzzy) translation; with ``only_from``, only those used in
    a source path starting with one of those prefixes."""
    import polib

    prefixes = tuple(only_from)
    missing = []
    for entry in polib.pofile(str(po_file)):
        if entry.obsolete:
            continue
        if prefixes and not any(path.startswith(prefixes) for path, _line in entry.occurrences):
            continue
        done = all(entry.msgstr_plural.values()) if entry.msgid_plural else bool(entry.msgstr)
        if not done or entry.fuzzy:
            missing.append(entry.msgid)
    return missing


def fresh_extraction() -> Path:
    """Extract into a temporary copy of ``locale/`` (existing translations kept) and return
    its path; the caller removes it."""
    tmp = Path(tempfile.mkdtemp(prefix="tagwerk-catalogs-")) / "locale"
    shutil.copytree(LOCALE, tmp)
    extract(tmp)
    return tmp


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "help"
    if command == "extract":
        extract()
    elif command == "compile":
        for path in compile_all():
            print(path.relative_to(ROOT))
    elif command == "missing":
        for language in LANGUAGES:
            for domain in DOMAINS:
                path = po_path(language, domain)
                if path.exists():
                    missing = untranslated(path)
                    print(f"{path.relative_to(ROOT)}: {len(missing)} untranslated")
    else:
        print(__doc__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
