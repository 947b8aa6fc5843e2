# Two commands do all the set-up on a fresh machine:
#   make report   create .venv if absent, install fer, run the demo workflow -> reports/all.html
#   make test     same venv, then lint + the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CORES ?= $(shell nproc)
STAMP := $(VENV)/.installed-stamp
# Rules call the `fer` command: put the venv first on PATH for Snakemake and its jobs.
export PATH := $(BIN):$(PATH)

.PHONY: install report test test-fast lint dry-run docs clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

report: $(STAMP)
	$(BIN)/snakemake reports/all.html --cores $(CORES) --resources gpu=1

dry-run: $(STAMP)  # the plans' job counts and reasons (every job's detail: snakemake -n TARGET)
	$(BIN)/snakemake -n --quiet rules -- reports/all.html
	$(BIN)/snakemake -n --quiet rules --configfile=config/paper.yaml -- reports/all.html

# Rewrite the generated parts of the docs (config/README.md's recipe table).
docs: $(STAMP)
	$(BIN)/python scripts/update_docs.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint

# pytest exit 5 (no test collected) is a failure too: a suite that runs nothing proves nothing.
test: lint
	$(BIN)/pytest -ra $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The iteration lane: lint, then every test but the slow ones (whole workflow runs, the SLURM
# cluster, the oldest-torch install); `make test` is the full suite CI runs.
test-fast: lint
	$(BIN)/pytest -ra -m "not slow and not slurm" $(PYTEST_ARGS)

clean:
	rm -rf resources models results logs benchmarks/*/ reports/all.html .snakemake
