# stepd container image: `docker build -t stepd:0.1.0 .` (pushing and pinning it for
# Kubernetes: docs/OPERATIONS.md, "Deploying").
# Two stages: the first builds a virtual environment from constraints.txt, the second
# copies only that environment onto a clean base and runs as an unprivileged user.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
RUN python -m venv /opt/stepd \
 && /opt/stepd/bin/pip install --constraint constraints.txt .

FROM python:3.11.14-slim-bookworm

# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it and volume
# ownership is predictable on every host.
ARG STEPD_UID=10001

RUN groupadd --system --gid "${STEPD_UID}" stepd \
 && useradd --system --no-log-init --uid "${STEPD_UID}" --gid stepd \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin stepd \
 && mkdir /workspace \
 && chown "${STEPD_UID}:${STEPD_UID}" /workspace

COPY --from=build /opt/stepd /opt/stepd

# Settings are environment variables (see docs/CONFIGURATION.md). The image listens on every
# interface, so it expects bearer tokens in STEPD_AUTH_TOKENS_FILE (a secret mount).
# DL3064 flags the variable's name; its value is a path, the tokens stay in the mount.
# hadolint ignore=DL3064
ENV PATH=/opt/stepd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STEPD_HOST=0.0.0.0 \
    STEPD_PORT=8080 \
    STEPD_WORKSPACE_ROOT=/workspace \
    STEPD_AUTH_TOKENS_FILE=/run/secrets/stepd-tokens \
    STEPD_LOG_LEVEL=info

VOLUME ["/workspace"]
USER ${STEPD_UID}:${STEPD_UID}
EXPOSE 8080

# `stepd healthcheck` reads the same settings as `stepd serve` (port, TLS): it asks this
# host's /healthz over HTTPS when a certificate is set, and exits 1 on any failure.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["stepd", "healthcheck"]

CMD ["stepd", "serve"]
