# scalinglab: the dashboard and its job scheduler on a slim Python base (no CUDA, no torch).
#
#   docker build -t scalinglab .
#   docker run -p 8501:8501 -v scalinglab-store:/data scalinglab
#
# Shared, behind sign-in (README "Shared set-up"): mount the sign-in file (Streamlit's
# [auth] section for your OpenID provider, plus [roles]) read-only and name it in
# SCALINGLAB_AUTH; it must be readable by the image's user (uid 1000), e.g. chmod 0444:
#
#   docker run -p 8501:8501 -v scalinglab-store:/data \
#       -v "$PWD/auth.toml:/run/secrets/scalinglab-auth.toml:ro" \
#       -e SCALINGLAB_AUTH=/run/secrets/scalinglab-auth.toml scalinglab
#
# GPU trainer image (adds torch + triton; PyPI's Linux torch wheel bundles CUDA, so only
# the host's NVIDIA driver is needed at run time: `docker run --gpus all ...`):
#
#   docker build --build-arg WITH_TRAIN=1 -t scalinglab:train .
#   docker run --gpus all -p 8501:8501 -v scalinglab-store:/data scalinglab:train \
#       scalinglab demo --store /data --address 0.0.0.0

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (from pyproject alone), so code edits do not reinstall them.
COPY pyproject.toml README.md ./
COPY app/__init__.py app/__init__.py
COPY fitting/__init__.py fitting/__init__.py
COPY store/__init__.py store/__init__.py
COPY trainers/__init__.py trainers/__init__.py
ARG WITH_TRAIN=0
# `auth`: Authlib, for sign-in (off unless SCALINGLAB_AUTH names a file).
RUN if [ "$WITH_TRAIN" = "1" ]; then pip install ".[train,auth]"; else pip install ".[auth]"; fi

# The code, then a real (non-editable) install of it.
COPY app ./app
COPY fitting ./fitting
COPY store ./store
COPY trainers ./trainers
COPY .streamlit ./.streamlit
RUN if [ "$WITH_TRAIN" = "1" ]; then pip install --no-deps ".[train,auth]"; else pip install --no-deps ".[auth]"; fi \
    && useradd --create-home --uid 1000 scalinglab \
    && mkdir -p /data && chown scalinglab:scalinglab /data

USER scalinglab
# The store lives on a volume: runs, fits and jobs survive the container.
ENV SCALINGLAB_STORE=/data
VOLUME ["/data"]
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
    CMD python -c "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4); sys.exit(0 if r.status == 200 else 1)"

# Dashboard + scheduler. The working directory holds .streamlit/config.toml; sign-in is on
# when $SCALINGLAB_AUTH names a sign-in file (serve checks it first and exits 2 if bad).
CMD ["scalinglab", "serve", "--store", "/data", "--port", "8501", "--address", "0.0.0.0"]
