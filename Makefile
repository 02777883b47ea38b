# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run   - creates .venv, installs, migrates, seeds a demo topic and an admin API user,
#                and starts web + worker + beat on the embedded default (SQLite, file-system broker).
#   make test  - installs the test dependencies and runs the whole suite (honours DATABASE_URL,
#                CELERY_BROKER_URL and REDIS_URL to run against PostgreSQL and Redis instead).
#   make lint  - ruff and the import layers contract (pyproject.toml); CI runs it before the tests.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint install install-dev migrate demo bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput -v 0

demo: migrate
	$(BIN)/python manage.py demo_setup

run: demo
	$(BIN)/python manage.py collectstatic --noinput -v 0
	@echo ""
	@echo "Starting web (http://127.0.0.1:8000), worker and beat. Stop with Ctrl-C."
	$(BIN)/honcho -f Procfile.dev start

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Style and import order (ruff), and the layers contract: imports point down, never up (import-linter).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Small versions of every benchmark (PostgreSQL and Redis on 127.0.0.1); figures in bench/results/.
bench-smoke: install-dev
	$(BIN)/python bench/ledger.py --processes 2 --per-process 100
	$(BIN)/python bench/audit.py --events 20000 --contacts 2000
	$(BIN)/python bench/inbound.py --contacts 200
	$(BIN)/python bench/broadcast.py --smoke
	$(BIN)/python bench/load.py --smoke

clean:
	rm -rf $(VENV) data staticfiles
