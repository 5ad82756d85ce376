# syntax=docker/dockerfile:1
# One image for every role: the command is the role (up, migrate, api, scheduler, planner,
# docs), e.g. `docker run ghcr.io/you/cronicorn scheduler`. Builds for linux/amd64 and
# linux/arm64 (every dependency ships wheels for both):
#   docker buildx build --platform linux/amd64,linux/arm64 -t cronicorn .
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: the docs site, the wheel, and wheels of every dependency --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir build==1.6.1 hatchling==1.33.0 \
       mkdocs-material==9.8.2
COPY pyproject.toml README.md mkdocs.yml docs_hooks.py ./
COPY docs ./docs
COPY src ./src
# The site is rendered with the package installed (its API reference comes from the OpenAPI
# document), then shipped inside the wheel (cronicorn/_site) for `cronicorn docs`.
RUN /opt/build/bin/pip install --no-cache-dir . \
    && /opt/build/bin/mkdocs build --strict -d src/cronicorn/_site \
    && /opt/build/bin/python -m build --wheel --no-isolation --outdir /dist . \
    && /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels /dist/*.whl

# --- runtime: no compilers, no build tools, not root ----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CRONICORN_ENV=production \
    CRONICORN_HOME=/var/lib/cronicorn \
    BACKUP_DIR=/var/lib/cronicorn/backups \
    LOG_FORMAT=json \
    HOST=0.0.0.0 \
    PORT=3333
# tini reaps zombies and forwards SIGTERM, so `docker stop` drains runs in flight.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cronicorn \
    && useradd --system --uid 10001 --gid cronicorn --home-dir /var/lib/cronicorn \
       --shell /usr/sbin/nologin cronicorn \
    && install -d -o cronicorn -g cronicorn -m 0750 /var/lib/cronicorn /var/lib/cronicorn/backups
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels /wheels/cronicorn-*.whl \
    && cronicorn --version
USER 10001:10001
WORKDIR /var/lib/cronicorn
VOLUME ["/var/lib/cronicorn/backups"]
EXPOSE 3333
# The API's /api/health, or a scheduler's/planner's own probe when HEALTH_PORT is set.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["cronicorn", "health"]
ENTRYPOINT ["tini", "--", "cronicorn"]
CMD ["up"]
