# shmfix.k8s: every entry point. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(ROOT)/.localcluster/bin:$(PATH)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export KUBECONFIG_LOCAL := $(ROOT)/.localcluster/kubeconfig
COLLECTION_LINK := .collections/ansible_collections/shmfix/k8s

.PHONY: help venv collection deps cluster-build cluster-up cluster-down cluster-status fleet-up fleet-down fleet-status cluster-up-current cluster-down-current cluster-status-current demo test unit integration molecule lint sanity bench bench-quick clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed ## Python virtualenv: the runtime requirements (ranges) and the development pins (.venv)

collection: ## make the checkout importable as shmfix.k8s (.collections/)
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn $(ROOT) $(COLLECTION_LINK)

deps: venv collection ## everything but the cluster

# Both embedded clusters by default: the legacy one (v1.34 control plane, v1.34 and v1.31 nodes) and
# the current one (v1.37, in-place resize of memory-backed volumes). CURRENT=0 skips the current one
# (its cold build took 27 min more here, niced beside a CI run; localcluster/README.md).
CURRENT ?= 1
cluster-build: ## build (or reuse from ~/.cache/shmfix) the binaries and images of both clusters (CURRENT=0: legacy only)
	localcluster/cluster.sh build
	@if [ "$(CURRENT)" != 0 ]; then localcluster/cluster.sh build-current; fi

cluster-up: deps ## start both embedded clusters, legacy and current (idempotent; CURRENT=0: legacy only)
	localcluster/cluster.sh up
	@if [ "$(CURRENT)" != 0 ]; then localcluster/cluster.sh up-current; else echo "CURRENT=0: the current cluster (v1.37) is not started"; fi

cluster-down: ## stop both embedded clusters (pid files), unmount their volumes (CURRENT=0: leave the current one running)
	@if [ "$(CURRENT)" != 0 ]; then localcluster/cluster.sh down-current; fi
	localcluster/cluster.sh down

cluster-status: ## components, nodes and versions of the embedded clusters
	localcluster/cluster.sh status; rc=$$?; if [ "$(CURRENT)" != 0 ]; then echo; localcluster/cluster.sh status-current || rc=1; fi; exit $$rc

cluster-up-current: deps ## start only the current cluster (v1.37.2; the legacy one is left as it is)
	localcluster/cluster.sh up-current

cluster-down-current: ## stop only the current cluster
	localcluster/cluster.sh down-current

cluster-status-current: ## components, RSS, node and declared features of the current cluster
	localcluster/cluster.sh status-current

FLEET ?= 8
fleet-up: ## FLEET (default 8) extra control planes on the cluster's etcd (idempotent; needs cluster-up)
	localcluster/cluster.sh fleet-up "$(FLEET)"

fleet-down: ## stop the fleet (pid files); FLEET_PURGE=1 also deletes its etcd keys
	FLEET_PURGE="$(FLEET_PURGE)" localcluster/cluster.sh fleet-down

fleet-status: ## per fleet cluster: port, pids, health, RSS
	localcluster/cluster.sh fleet-status

demo: cluster-up ## the main job against the embedded cluster
	localcluster/demo.sh

unit: deps ## unit tests of the pure logic
	$(PY) -m pytest -q tests/unit

integration: cluster-up ## integration tests on the real embedded cluster
	$(PY) -m pytest -q -rP tests/integration

molecule: cluster-up ## molecule scenarios default, eviction, version_check, rollback on the embedded cluster, inplace on the current one
	$(VENV)/bin/molecule test --all

lint: deps ## ruff, yamllint, ansible-lint, shellcheck, antsibull-docs lint of the docs
	$(VENV)/bin/ruff check plugins tests bench
	$(VENV)/bin/ruff format --check plugins tests bench
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/ansible-lint
	@command -v shellcheck >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck; }
	shellcheck -x localcluster/*.sh localcluster/lib/*.sh localcluster/scripts/*.sh tests/sanity/*.sh tests/artifact/*.sh bench/*.sh .ci/run
	tests/sanity/docs_lint.sh

sanity: deps ## ansible-test sanity on the collection
	tests/sanity/run.sh

test: deps unit cluster-up integration molecule lint sanity ## all set-up, unit tests, integration tests, molecule, lint, sanity

bench: deps cluster-up ## full benchmark, N=100/1000/5000, df, fleet: several hours (bench/results/<date>.md; BENCH_ARGS=... for bench/run.py)
	bench/setup.sh
	bench/.venv/bin/python bench/run.py $(BENCH_ARGS)

bench-quick: deps cluster-up ## CI variant: N=100, shm_patch vs concurrent script vs kubectl loop, a few minutes; fails on a bad ratio
	$(PY) bench/run.py --quick $(BENCH_ARGS)

clean: cluster-down ## remove the cluster state and the venv
	rm -rf .localcluster .localcluster-current .collections $(VENV)
