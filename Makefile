# The two commands of the README. Each one creates .venv and installs what it needs first
# (only from the package registry), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint test-any-hour test-night install clean

run: $(STAMP)          ## whole service on embedded defaults + demo, until Ctrl-C
	$(PY) -m starter up

test: $(STAMP)         ## the guard rails (make lint), then every test: unit, time-skipping workflow, end-to-end on the dev server
	@$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -rs -p no:cacheprovider

lint: $(STAMP)         ## ruff (lint, format), mypy, import contracts (pyproject.toml; docs/architecture.md)
	@status=0; \
	echo "== ruff check"; $(VENV)/bin/ruff check . || status=1; \
	echo "== ruff format --check"; $(VENV)/bin/ruff format --check . || status=1; \
	echo "== mypy"; $(VENV)/bin/mypy || status=1; \
	echo "== lint-imports"; $(VENV)/bin/lint-imports || status=1; \
	exit $$status

# Outcomes must not depend on the hour the suite runs (quiet and legal hours, folding, the
# escalation ladder): the same tests under faketime at chosen hours of the day.
HOURS        ?= 00:30 07:59 13:30 18:30
NIGHT_HOURS  ?= 18:30 23:59
TIMING_TESTS ?= tests/workflows/test_notice_folding.py tests/workflows/test_notice_engine.py tests/workflows/test_notice_retry.py \
                tests/activities/test_exactly_once.py tests/workflows/test_workflow.py tests/workflows/test_long_lives.py
# One offset for every process (pytest, the test server, workers, Chromium, ...): "@time"
# would start each process's clock at that time when it starts, so later processes would lag.
FAKETIME     := off=$$(( $$(date -u -d "$$(date -u +%F) $$hour:00" +%s) - $$(date -u +%s) )); \
                faketime -f "$$([ $$off -ge 0 ] && echo +)$$off"

test-any-hour: $(STAMP)  ## the suite except the dev-server tests, at 00:30, 07:59, 13:30 and 18:30 UTC
	@command -v faketime >/dev/null || { echo "faketime is missing (apt-get install faketime)"; exit 2; }
	@for hour in $(HOURS); do echo "== suite at $$hour UTC"; \
	  $(FAKETIME) $(PY) -m pytest -q -p no:cacheprovider -m "not e2e" || exit 1; done

test-night: $(STAMP)     ## the notice-timing tests at two night hours (02:30 and 07:59 in Shanghai)
	@command -v faketime >/dev/null || { echo "faketime is missing (apt-get install faketime)"; exit 2; }
	@for hour in $(NIGHT_HOURS); do echo "== notice-timing tests at $$hour UTC"; \
	  $(FAKETIME) $(PY) -m pytest -q -p no:cacheprovider $(TIMING_TESTS) || exit 1; done

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf .data
