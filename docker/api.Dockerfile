# syntax=docker/dockerfile:1
# Sepsis Risk API image: `sepsis-api serve` with PostgreSQL support and the shipped model.
# Build from the repository root (compose.yaml does this):
#   docker build -f docker/api.Dockerfile -t sepsis-api:local .
# Run with keys from a secret file (the server refuses a public bind without keys):
#   docker run -p 127.0.0.1:8000:8000 -v "$PWD/secrets/api_keys:/run/secrets/api_keys:ro" \
#     -e SEPSIS_API_KEYS_FILE=/run/secrets/api_keys sepsis-api:local
ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: the project and every dependency installed under /staging, then slimmed ------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# strip(1) for slim_site_packages.py; the builder stage is thrown away.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
# No compilers: every dependency ships wheels for linux/amd64 and linux/arm64.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
COPY docker/slim_site_packages.py ./
# The shipped model (src/sepsis_api/models) is package data, so it is installed with the package.
# --root: the files land where the runtime stage's Python looks, under /staging, so that one
# COPY carries them. Slimming drops test suites, headers, unused modules and debug symbols.
# The project itself ("."): its dependencies are bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --root /staging --no-warn-script-location ".[postgres]" \
    && python slim_site_packages.py /staging

# -- runtime: no compilers, no sources, non-root ------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba \
    SEPSIS_API_DATA_DIR=/data
RUN groupadd --system --gid 10001 sepsis \
    && useradd --system --uid 10001 --gid sepsis --create-home --home-dir /home/sepsis \
       --shell /usr/sbin/nologin sepsis \
    && mkdir -p /data \
    && chown sepsis:sepsis /data
# Only what the builder installed and slimmed: no pip run here, versions fixed by that stage.
COPY --from=builder /staging/ /
WORKDIR /home/sepsis
# Numeric, so orchestrators can verify runAsNonRoot.
USER 10001:10001
# Compile the scoring kernels into numba's cache now, so a container is ready in seconds rather
# than compiling on every start (a CPU unlike the build machine's compiles once, at start).
RUN python -c "from sepsis_api.ml.scoring import Predictor; \
from sepsis_api.ml.store import PACKAGED_ROOT, Registry; Predictor(Registry([PACKAGED_ROOT]).open())"
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# API keys come from SEPSIS_API_KEYS_FILE (a mounted secret) or SEPSIS_API_KEYS at run time.
CMD ["sepsis-api", "serve", "--host", "0.0.0.0", "--port", "8000"]
