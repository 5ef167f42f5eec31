"""Foundation: ``seed_demo`` of 10,000 contacts on the embedded SQLite default.

Runs in a subprocess against a fresh SQLite file, as ``make run`` does on first start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TITLE = "Foundation: demo data on SQLite"
ROOT = Path(__file__).resolve().parent.parent


def _manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def run(argv: list[str]) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
               "TAGWERK_VAR_DIR": tmp, "DJANGO_SETTINGS_MODULE": "config.settings.base"}
        _manage(env, "migrate", "--noinput", "-v0")
        for label in ("first run (creates)", "second run (idempotent, adds nothing)"):
            result = json.loads(_manage(env, "seed_demo", "--contacts", "10000", "--json")
                                .strip().splitlines()[-1])
            rows.append(f"| {label} | {result['contacts_created']:,} | {result['tags_added']:,} "
                        f"| {result['seconds']:.1f} |")
    return "\n".join([
        f"## {TITLE}",
        "",
        "`python manage.py seed_demo --contacts 10000` on a fresh SQLite file "
        "(goal: well under 30 s).",
        "",
        "| run | contacts created | tags applied | seconds |",
        "|---|---:|---:|---:|",
        *rows,
    ])
