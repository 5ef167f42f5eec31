# Tagwerk — `make run` for the demo, `make test` for the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2
DEMO_LANGUAGE ?= de
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint format bench clean e2e-browser messages

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found; set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	@mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --if-empty --language $(DEMO_LANGUAGE)
	$(PY) manage.py ensure_admin
	$(PY) -m config.dev

test: $(STAMP)
	@mkdir -p var
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .


format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Translations: update locale/*/LC_MESSAGES/*.po from the sources (needs GNU gettext's
# xgettext), then compile the .mo files in pure Python (polib). Commit both.
messages: $(STAMP)
	$(PY) -m config.catalogs extract
	$(PY) -m config.catalogs compile
	$(PY) -m config.catalogs missing

bench: $(STAMP)
	$(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf var/tagwerk.sqlite3* var/broker var/admin-password.txt
