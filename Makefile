# The two commands of the README do all the set-up themselves:
#   make train PROJECT=mnist      # creates .venv when needed, then trains the project's default preset
#   make test                     # creates .venv when needed, then runs the test suite
PROJECT ?= mnist
ARGS ?=
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup train evaluate predict test lint format benchmark clean help

help:
	@echo "make setup                       create $(VENV) and install the project with its dev tools"
	@echo "make train PROJECT=mnist ARGS='model=mlp trainer=gpu'"
	@echo "make evaluate PROJECT=mnist      score the latest run again"
	@echo "make predict PROJECT=mnist ARGS='input=digits/ output=preds.csv'"
	@echo "make test                        the test suite (real-data tests need PORTFOLIO_DATA_DIR)"
	@echo "make lint                        ruff"
	@echo "make benchmark PROJECT=mnist     the accuracy and speed benchmark on the real data"

setup: $(VENV)/.installed

# Reinstall when the dependencies change. torch is pinned in pyproject.toml (see the README).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

train: setup
	$(BIN)/python -m projects.$(PROJECT) train $(ARGS)

evaluate: setup
	$(BIN)/python -m projects.$(PROJECT) evaluate $(ARGS)

predict: setup
	$(BIN)/python -m projects.$(PROJECT) predict $(ARGS)

# One worker per core (pytest-xdist); a test file stays on one worker, so its module fixtures train once; files in
# collection order (heavy ones first: tests/conftest.py), not xdist's default of the files with the most tests first.
test: setup
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

benchmark: setup
	$(BIN)/python scripts/benchmark.py $(PROJECT) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
