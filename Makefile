# Every target sets up what it needs on a fresh machine: the virtual environment, the package
# and its development tools, and the complaint model (trained from the project's own corpus).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MODEL  := models/complaints/meta.json
PYTEST := $(BIN)/python -m pytest

.PHONY: demo test lint bench soak model clean help

help:
	@echo "make demo   run the bot end to end on the sample bank (embedded Redis, X sandbox)"
	@echo "make test   run the test suite (what CI runs, with make lint)"
	@echo "make lint   ruff and mypy"
	@echo "make bench  measure throughput and latency (triagebot bench)"
	@echo "make soak   the slow endurance tests"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The complaint model, trained (seeded) from bot/nlp/corpus when missing or older than it.
$(MODEL): $(STAMP) $(wildcard bot/nlp/corpus/*.jsonl)
	$(BIN)/triagebot train

model: $(MODEL)

demo: $(STAMP) $(MODEL)
	$(BIN)/triagebot demo

test: $(STAMP) $(MODEL)
	$(PYTEST) -m "not soak"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot workers

bench: $(STAMP) $(MODEL)
	$(BIN)/triagebot bench

soak: $(STAMP) $(MODEL)
	$(PYTEST) -m soak

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
