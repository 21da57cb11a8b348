# One command for the demo, one for the tests; both set up .venv from the project's own files.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench emails lint clean airflow airflow-stop

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sisflow demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# make bench BENCH_ARGS="--customers 500 --concurrency 4" for the many-customers mode
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

airflow: $(STAMP)
	$(BIN)/python scripts/airflow_local.py start

airflow-stop: $(STAMP)
	$(BIN)/python scripts/airflow_local.py stop

emails: $(STAMP)
	$(BIN)/python scripts/render_emails.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .sisflow .pytest_cache .ruff_cache
