# Two commands on a fresh machine: `make run` serves, `make test` checks. Each installs what it needs:
# run only what running needs (`.`), test the test tools too (`.[dev]`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint fuzz

# --no-compile: Python compiles what it imports when it first does, not every module of every package
# (pip's CPU for the install: 44.3 s with compiling, 34.4 s without, on the 2-core machine)
$(BIN)/escrow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -e .
	touch $@

$(BIN)/pytest: $(BIN)/escrow
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# ARGS go to `escrow demo`, e.g. make run ARGS="--port 8001 --institutions 690"
run: $(BIN)/escrow
	$(BIN)/escrow demo $(ARGS)

lint: $(BIN)/pytest
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
fuzz: $(BIN)/pytest
	$(BIN)/python scripts/api_fuzz.py $(or $(EXAMPLES),20)

# every script in bench/, each printing its JSON line; SIZE=0.1 for a quick run
.PHONY: bench
bench: $(BIN)/pytest
	$(BIN)/python bench/run_all.py --size $(or $(SIZE),1)
