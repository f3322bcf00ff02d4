# Bridge: `make run` serves, `make test` tests. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo test test-postgres fuzz lint format bench superuser clean

# The Python client (clients/python) is installed in the same pip command: pip
# cannot read a relative path from the dev extra (see pyproject.toml).
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./clients/python
	touch $(STAMP)

install: $(STAMP)

## Serve on :8000 (embedded Redis unless REDIS_URL is set; open auth for development).
run: install
	DEBUG=$${DEBUG:-1} BRIDGE_AUTH_MODE=$${BRIDGE_AUTH_MODE:-open} \
		$(BIN)/python -m bridge_project.serve

## `make run`'s server in the background and examples/echo_bot.py in the
## foreground; Ctrl-C stops both. Mention @echo_bot to get a streamed answer.
demo: install
	@DEBUG=$${DEBUG:-1} BRIDGE_AUTH_MODE=$${BRIDGE_AUTH_MODE:-open} \
		PUBLIC_ACCOUNTS=$${PUBLIC_ACCOUNTS:-echo_bot} \
		$(BIN)/python -m bridge_project.serve & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server' EXIT INT TERM; \
	BRIDGE_URL=$${BRIDGE_URL:-http://127.0.0.1:$${PORT:-8000}} \
		$(BIN)/python examples/echo_bot.py

## The whole suite: unit, integration (real Redis) and end-to-end (real daphne).
test: install
	$(BIN)/python -m pytest

## The database tests again, on PostgreSQL (DATABASE_URL must point at it).
test-postgres: install
	$(BIN)/python -m pytest -m 'django_db and not fuzz'

## Nightly-size fuzzing: 5,000+ schemathesis requests, 2,500 WebSocket frames.
fuzz: install
	$(BIN)/python -m pytest -m fuzz -p no:cacheprovider -s

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmark: see bench/README.md for the scenarios and options.
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

superuser: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput -v 0
	DEBUG=1 $(BIN)/python manage.py createsuperuser

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 .pytest_cache .ruff_cache
