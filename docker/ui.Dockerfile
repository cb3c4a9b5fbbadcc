# syntax=docker/dockerfile:1
# Sepsis Risk web UI image: `sepsis-api ui` (Streamlit), talking to the API over HTTP.
# Build from the repository root (compose.yaml does this):
#   docker build -f docker/ui.Dockerfile -t sepsis-api-ui:local .
# Configure with SEPSIS_API_UI_API_URL (e.g. http://api:8000) and SEPSIS_API_UI_API_KEY.
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
# --root: the files land where the runtime stage's Python looks, under /staging, so that one
# COPY carries them. Slimming drops test suites, headers, unused modules and debug symbols.
# The project itself ("."): its dependencies are bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --root /staging --no-warn-script-location ".[ui]" \
    && python slim_site_packages.py /staging

# -- runtime: no compilers, no sources, non-root ------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba
RUN groupadd --system --gid 10001 sepsis \
    && useradd --system --uid 10001 --gid sepsis --create-home --home-dir /home/sepsis \
       --shell /usr/sbin/nologin sepsis
# Only what the builder installed and slimmed: no pip run here, versions fixed by that stage.
COPY --from=builder /staging/ /
WORKDIR /home/sepsis
# Numeric, so orchestrators can verify runAsNonRoot.
USER 10001:10001
EXPOSE 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["sepsis-api", "ui", "--host", "0.0.0.0", "--port", "8501"]
