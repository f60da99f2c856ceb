# The two commands of the README. Each one creates .venv and installs what it needs first
# (only from the package registry), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test install clean

run: $(STAMP)          ## whole service on embedded defaults + demo, until Ctrl-C
	$(PY) -m starter up

test: $(STAMP)         ## every test: unit, time-skipping workflow tests, end-to-end on the dev server
	$(PY) -m pytest -q -p no:cacheprovider

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf .data
