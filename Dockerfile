# syntax=docker/dockerfile:1.7
# One image for every ark-mesh service; the container command picks the service:
#
#   python -m ark_mesh.controller       --config /etc/ark-mesh/config.yaml
#   python -m ark_mesh.query_reconciler --config /etc/ark-mesh/config.yaml
#   python -m ark_mesh.status_sync      --config /etc/ark-mesh/config.yaml
#
# Stages: `builder` installs the uv workspace from the lock file, the services and what they use
# only (the root project's dependencies; no dev group: no pytest, no K8s API emulator, no fake
# model); `runtime` (the default, last stage) is what the Helm chart runs; `dev` adds the
# local-mesh group (the fake model the chart's `fakeModel` runs, the `ark-mesh` CLI), the
# restart wrapper the Tilt loop needs, and lets the app user write the synced sources.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH
# A fixed uid/gid so the chart's securityContext (runAsUser 10001) matches the image.
RUN groupadd --system --gid 10001 ark \
    && useradd --system --uid 10001 --gid ark --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ark
WORKDIR /app

FROM base AS builder
COPY --from=uv /uv /usr/local/bin/uv
# The interpreter of the base image, never a downloaded one: the venv's python symlink must
# resolve in the runtime stage, which has the same base.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
# Third-party dependencies first, from the lock and the members' pyproject files only, so this
# layer is rebuilt when dependencies change, not on every code change.
COPY pyproject.toml uv.lock ./
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/telemetry/pyproject.toml libs/telemetry/
COPY libs/bus/pyproject.toml libs/bus/
COPY libs/kube/pyproject.toml libs/kube/
COPY libs/resolver/pyproject.toml libs/resolver/
COPY libs/service/pyproject.toml libs/service/
COPY libs/testing/pyproject.toml libs/testing/
COPY libs/devmesh/pyproject.toml libs/devmesh/
COPY services/controller/pyproject.toml services/controller/
COPY services/query-reconciler/pyproject.toml services/query-reconciler/
COPY services/responses-reconciler/pyproject.toml services/responses-reconciler/
COPY services/embeddings-reconciler/pyproject.toml services/embeddings-reconciler/
COPY services/status-sync/pyproject.toml services/status-sync/
COPY services/broker/pyproject.toml services/broker/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace
# Then the workspace itself. Members are installed editable (uv's default), so the code runs
# from /app/libs and /app/services: the paths Tilt's live_update syncs into.
COPY libs/ libs/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

FROM builder AS dev-builder
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --group local-mesh

FROM base AS dev
COPY --from=dev-builder --chown=10001:10001 /app /app
COPY --chmod=0755 tilt/dev-restart.sh /usr/local/bin/ark-mesh-dev-restart
USER 10001:10001
CMD ["python", "-m", "ark_mesh.controller", "--help"]

FROM base AS runtime
# Owned by root and read-only for the service user: a compromised process cannot change code.
COPY --from=builder /app /app
USER 10001:10001
CMD ["python", "-m", "ark_mesh.controller", "--help"]
