# `make sandbox` and `make test` work on a fresh machine: each creates .venv and installs
# what it needs first. Nothing here needs a Slack or AWS account.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: sandbox test lint format bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The sandbox needs only the package and its simulated world, not the dev toolchain.
SANDBOX_STAMP := $(VENV)/.installed-sandbox
$(SANDBOX_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sandbox]'
	touch $(SANDBOX_STAMP)

sandbox: $(SANDBOX_STAMP)
	$(VENV)/bin/tugboat sandbox

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict bot commands
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

# Benchmarks (issue #7): the bench extra (matplotlib, ecs-deploy) joins the dev install, then
# bench/run_all.py runs everything and rewrites docs/benchmarks.md and docs/bench/.
bench:
	started=$$(date +%s); \
	$(MAKE) --no-print-directory $(STAMP) && \
	$(PY) -m pip install --quiet -e '.[dev,bench]' && \
	BENCH_STARTED=$$started $(PY) bench/run_all.py

# The soak (issue #6): ~10 minutes of deploys through throttling, 429s and two restarts.
# Its figures join docs/benchmarks.md at the next `make bench`.
soak: $(STAMP)
	$(PY) bench/soak.py --json docs/bench/soak.json

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
