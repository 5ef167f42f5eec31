"""``make bench``: run the benchmarks and write their results into docs/benchmarks.md.

Each ``benchmarks/bench_<name>.py`` defines ``TITLE`` and ``run(argv) -> str`` returning a
Markdown section; this runner replaces that section between its markers in the
document, so the file always holds the latest run of every benchmark.

    make bench                         # all
    make bench BENCH_ARGS="audiences"  # one, by name
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Measured on this project's 2-core machine by `make bench` (see `benchmarks/`).
Each section is rewritten by its benchmark; rerun one with `make bench BENCH_ARGS=<name>`.
PostgreSQL benchmarks use `BENCH_DATABASE_URL`
(default `postgres://postgres@127.0.0.1:5432/tagwerk_bench`).
"""


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tagwerk_bench")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def write_section(name: str, markdown: str) -> None:
    text = DOC.read_text() if DOC.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else \
        f"{text.rstrip()}\n\n{block}\n"
    DOC.write_text(text)


def main(argv: list[str]) -> int:
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(ROOT / "benchmarks")])
                   if m.name.startswith("bench_"))
    wanted = [a for a in argv if not a.startswith("-")] or names
    unknown = set(wanted) - set(names)
    if unknown:
        print(f"Unknown benchmark(s): {', '.join(sorted(unknown))}. Known: {', '.join(names)}")
        return 2
    setup_django()
    for name in wanted:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {module.TITLE}", flush=True)
        started = time.monotonic()
        section = module.run([a for a in argv if a.startswith("-")])
        if not section.lstrip().startswith("#"):
            section = f"## {module.TITLE}\n\n{section}"
        write_section(name, section)
        print(section)
        print(f"({time.monotonic() - started:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
