# Two commands on a fresh machine: `make run` serves, `make test` checks. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint fuzz

$(BIN)/escrow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/escrow
	$(BIN)/escrow demo

lint: $(BIN)/escrow
	$(BIN)/ruff check escrow api tests migrations scripts bench
	$(BIN)/ruff format --check escrow api tests migrations scripts bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint browser
	$(BIN)/pytest

# the console's browser tests drive Debian's Chromium and need a Chinese font (tests/web/conftest.py)
.PHONY: browser
browser:
	@test -x /usr/bin/chromium -a -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || \
		{ $(if $(filter 0,$(shell id -u)),,sudo -n) apt-get update -q && \
		  $(if $(filter 0,$(shell id -u)),,sudo -n) apt-get install -y -q chromium fonts-wqy-microhei; }

# schemathesis, all checks, against the real service with the test district seeded
fuzz: $(BIN)/escrow
	$(BIN)/python scripts/api_fuzz.py $(or $(EXAMPLES),20)

# every script in bench/, each printing its JSON line; SIZE=0.1 for a quick run
.PHONY: bench
bench: $(BIN)/escrow
	$(BIN)/python bench/run_all.py --size $(or $(SIZE),1)
