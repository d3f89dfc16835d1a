# Tugboat: `tugboat serve` (Socket Mode to Slack, plus HTTP on $PORT for /healthz and
# /github/webhook, and /metrics alone on $METRICS_PORT, never published). Build: docker build -t tugboat .
#
# The catalog is not baked in: put it at /etc/tugboat/tugboat.yml, for example with a
# two-line image of your own (FROM tugboat / COPY tugboat.yml /etc/tugboat/tugboat.yml), or
# point TUGBOAT_CONFIG elsewhere. Secrets (SLACK_BOT_TOKEN, SLACK_APP_TOKEN,
# GITHUB_WEBHOOK_SECRET) come from the environment at run time, never from this file.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- stage 1: a virtualenv with the locked dependencies and the tugboat wheel ---------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/tugboat

# Dependencies first, from exact pins, so this layer is cached until the lock changes.
COPY requirements.lock ./
RUN /opt/tugboat/bin/pip install --no-cache-dir --requirement requirements.lock

# Then the project: built into a wheel and installed without resolving anything new.
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
RUN /opt/tugboat/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels . \
    && /opt/tugboat/bin/pip install --no-cache-dir --no-deps /tmp/wheels/tugboat-*.whl

# -- stage 2: the runtime, with the virtualenv and nothing else -----------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/tugboat/bin:$PATH \
    PORT=8080 \
    METRICS_PORT=9090 \
    TUGBOAT_CONFIG=/etc/tugboat/tugboat.yml \
    TUGBOAT_STATE=sqlite:////var/lib/tugboat/tugboat.db

RUN groupadd --system --gid 10001 tugboat \
    && useradd --system --uid 10001 --gid tugboat --home-dir /var/lib/tugboat \
       --create-home --shell /usr/sbin/nologin tugboat \
    && mkdir -p /etc/tugboat

COPY --from=build /opt/tugboat /opt/tugboat

WORKDIR /var/lib/tugboat
USER 10001:10001

EXPOSE 8080 9090

# /healthz answers 200 only while the Socket Mode connection is up. There is no curl in a slim
# image, so Python's urllib asks, bypassing any HTTP(S)_PROXY; a 503 raises, which fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]

# Exec form: tugboat is PID 1 and receives SIGTERM itself, then finishes cleanly.
ENTRYPOINT ["tugboat"]
CMD ["serve"]
