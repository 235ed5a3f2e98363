# Round-Robin Dispatch: install, test and demo targets. See README.md.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: install test test-fast demo lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

## Run the whole test suite (starts a private redis-server when none is reachable).
test: install
	$(PY) scripts/run_tests.py

## Run the suite without the browser tests.
test-fast: install
	$(PY) scripts/run_tests.py -m "not browser"

## Run the service end to end against fake_twilio and print each dispatch's timeline.
demo: install
	$(PY) scripts/demo.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy dispatch webhooks jobs app.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
