# stigmer_nb: `make lab` opens JupyterLab on the notebooks, `make test` runs every test.
# Needs only python3 and make: everything else is installed into .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install lab test unit integration notebooks browser demo bench lint clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lab,test,calls]'
	$(BIN)/python extensions/install.py --prefix $(VENV)
	touch $(STAMP)

install: $(STAMP)

# JupyterLab refuses to run as root (containers, CI machines) unless told it may.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 $(LAB_ARGS)

test: install chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

notebooks: install
	$(BIN)/python -m pytest tests/notebooks $(PYTEST_ARGS)

demo: install
	$(BIN)/stigmer-nb run examples/hello.yaml --input '{"name": "demo"}' --home .stigmer_nb/demo

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check stigmer_nb tests bench

# The browser test drives Debian's chromium; install it when it is missing (root only).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing and cannot be installed here; the browser test will be skipped"; fi; }

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
