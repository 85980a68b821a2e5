# knet: `make test` and `make demo` set up everything they need on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all deps venv tools kind-tools traefik test unit e2e kind-test lint demo demo-down demo-devcluster demo-devcluster-down bench image clean conformance conformance-gateway

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

# kind's node binaries (kind, containerd 2, runc, crictl, CNI plugins); `knet kind up` builds the node image and
# knet's image from them when they are missing.
kind-tools: deps
	@hack/build-kind.sh >/dev/null

# Traefik v3, the ingress and gateway benches' anchor (hack/build-traefik.sh): minutes cold, so only `make bench`
# builds it; the quick benches of `make test` use it when it is built and print why its column is missing if not.
traefik:
	@hack/build-traefik.sh >/dev/null

lint: venv
	$(BIN)/ruff check operators tests bench conftest.py

unit: venv
	$(BIN)/pytest -m "not e2e and not kind" -q

e2e: deps venv tools
	$(BIN)/pytest -m e2e -q

# The kind stage alone: the README's kind section, then services, DNS, policy, ingress, containment, faults.
kind-test: deps venv tools kind-tools
	$(BIN)/pytest -m kind -q

test: deps venv tools kind-tools lint
	$(BIN)/pytest -q

demo: deps venv tools kind-tools
	$(BIN)/python -m operators.kind.demo

demo-down: venv
	$(BIN)/knet kind down --name knet

demo-devcluster: deps venv tools
	$(BIN)/python -m operators.devcluster.demo

demo-devcluster-down: venv
	$(BIN)/knet devcluster down --name knet

bench: deps venv tools traefik
	$(BIN)/pytest bench -q --bench-full -s

# knet's image from the Containerfile, without Docker (buildah + mmdebstrap); minutes, so not part of test.
image:
	@hack/build-image.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Upstream's sig-network e2e, knet against the baseline (conformance/README.md): e2e.test built or reused, then
# for each side a kind cluster made, the three full suites run (each run's junit_01.xml, e2e.log and run.json
# under build/conformance/TIME/SIDE/SUITE), the cluster deleted; the table of both in table.md there. The
# table is what this target makes: it exits 1 if any suite of either side failed, after printing it.
CONFORMANCE_STAMP := $(shell date -u +%Y%m%d-%H%M%S)
CONFORMANCE_DIR ?= build/conformance/$(CONFORMANCE_STAMP)
conformance: deps venv tools kind-tools
	@hack/build-e2e.sh >/dev/null
	$(BIN)/knet conformance compare --quiet --out $(CONFORMANCE_DIR)

# The Gateway API conformance suite (sigs.k8s.io/gateway-api v1.6.3, profile GATEWAY-HTTP) against knet on a kind
# cluster made and deleted here (conformance/gateway/README.md): the suite and its images built or reused
# (hack/build-gateway-conformance.sh), the suite run in the kind network namespace; suite.log, report.yaml and
# summary.txt under build/conformance/gateway-TIME. Exits 1 if a test failed, after printing the summary.
conformance-gateway: deps venv tools kind-tools
	$(BIN)/knet conformance gateway --quiet
