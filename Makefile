# knet: `make test` and `make demo` set up everything they need on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all deps venv tools test unit e2e lint demo demo-down bench image clean

all: test

deps:
	@hack/install-deps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q -e '.[test]' > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

tools:
	@hack/build-upstream.sh >/dev/null

lint: venv
	$(BIN)/ruff check operators tests bench conftest.py

unit: venv
	$(BIN)/pytest -m "not e2e" -q

e2e: deps venv tools
	$(BIN)/pytest -m e2e -q

test: deps venv tools lint
	$(BIN)/pytest -q

demo: deps venv tools
	$(BIN)/python -m operators.devcluster.demo

demo-down: venv
	$(BIN)/knet devcluster down --name knet

bench: deps venv tools
	$(BIN)/pytest bench -q --bench-full -s

# knet's image from the Containerfile, without Docker (buildah + mmdebstrap); minutes, so not part of test.
image:
	@hack/build-image.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
