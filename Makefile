# The README's two commands: `make demo` (set up, run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch; pip finds it on this machine's disk. Override for CUDA builds.
TORCH ?= torch==2.13.0

.PHONY: setup demo test quick props lint bench docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev,reference]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/neuralband demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q
	d=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q -d "$$d"; \
	    rc=$$?; rm -rf "$$d"; exit $$rc

# The tests but the slow ones (real JACK clients, Chromium, real MIDI collections): a quick loop.
quick: setup
	$(PY) -m pytest -q -m "not slow"

# The property tests (hypothesis) under many seeds: each CI run draws new examples, so a rare
# case can fail a submission; sweeping seeds here finds it first.  make props SEEDS="$$(seq 50)"
SEEDS ?= 1 2 3 4 5 6 7 8 9 10
props: setup
	@for s in $(SEEDS); do echo "seed $$s"; \
	    $(PY) -m pytest -q -p no:cacheprovider -m hypothesis --hypothesis-seed=$$s || exit 1; done

# The documentation site (mkdocs.yml, docs/) into site/; strict: a broken link or anchor fails.
# `$(VENV)/bin/mkdocs serve` serves it with live reload.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

bench: setup
	$(PY) benchmarks/encode.py

clean:
	rm -rf $(VENV) out site .pytest_cache .hypothesis
