# mlstack's images, one per role, built from the lock file (`uv sync --frozen`):
#   inference        the service alone (`python -m app`): the package's base dependencies, no
#                    MLflow, no pandas, no compilers and no shell; one flattened layer
#   training         the round (`python -m training`), the control plane (`mlstack serve`) and
#                    the accounts Job (`python -m control.accounts`): the `training` and
#                    `control` extras
#   tracking-server  the MLflow tracking server with PostgreSQL and S3 drivers
#                    (`tracking-server` extra)
# Written for the classic builder too (no BuildKit-only syntax), which builds every stage above
# its target: the roles come in the order tracking-server, training, inference. `make images`
# builds all three and prints their sizes; `make image-check` checks their configuration.
#
#   docker build --target inference -t mlstack-inference:0.1.0 .
#
# BASE_IMAGE must provide python3.11 at the same path in every stage (the virtual environment is
# copied between stages); Debian bookworm images with Python 3.11 do. The default is pinned by
# digest (Dependabot moves it); machines without a registry pass their own base
# (`make base-offline`).
ARG BASE_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${BASE_IMAGE} AS uv
ARG UV_VERSION=0.13.9
# binutils: `strip`, for the packages' shared libraries (hack/images/trim.sh); build stages only.
RUN python3.11 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}" \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
# Bytecode is compiled at build time: the root filesystem is read-only at run time and start-up
# time is a budget. The interpreter is the base image's: uv never downloads one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON=python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
COPY pyproject.toml uv.lock ./


FROM ${BASE_IMAGE} AS runtime
# No package lists or downloaded packages from the base's own build stay behind.
RUN groupadd --system --gid 10001 mlstack \
    && useradd --system --uid 10001 --gid mlstack --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin mlstack \
    && rm -rf /var/cache/apt/* /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp


FROM uv AS tracking-server-build
RUN /opt/uv/bin/uv sync --frozen --no-dev --extra tracking-server --no-install-project
COPY hack/images/trim.sh /usr/local/bin/mlstack-trim
RUN sh /usr/local/bin/mlstack-trim /opt/venv


FROM runtime AS tracking-server
ARG VERSION=0.1.0
ARG BASE_IMAGE
LABEL org.opencontainers.image.title="mlstack-tracking-server" \
      org.opencontainers.image.description="MLflow tracking server with PostgreSQL and S3 drivers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
COPY --from=tracking-server-build /opt/venv /opt/venv
# One worker and no job runner: 2 processes instead of 13 (see the chart's values).
ENV MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
USER 10001:10001
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1"]


FROM uv AS training-build
RUN /opt/uv/bin/uv sync --frozen --no-dev --extra training --extra control --no-install-project
COPY README.md ./
COPY app ./app
COPY kernel ./kernel
COPY training ./training
COPY control ./control
RUN /opt/uv/bin/uv sync --frozen --no-dev --extra training --extra control --no-editable
COPY hack/images/trim.sh /usr/local/bin/mlstack-trim
RUN sh /usr/local/bin/mlstack-trim /opt/venv


FROM runtime AS training
ARG VERSION=0.1.0
ARG BASE_IMAGE
LABEL org.opencontainers.image.title="mlstack-training" \
      org.opencontainers.image.description="mlstack training round, control plane and accounts Job" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
COPY --from=training-build /opt/venv /opt/venv
ENV MLSTACK_CODE_VERSION=${VERSION} \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
CMD ["python", "-m", "training"]


FROM uv AS inference-build
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project
COPY README.md ./
COPY app ./app
COPY kernel ./kernel
COPY training ./training
COPY control ./control
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-editable
COPY hack/images/trim.sh /usr/local/bin/mlstack-trim
# What serving imports: app, kernel, and the two modules of training it shares (the contract
# and the MLmodel reader). The rest of the package, and its commands, go.
RUN site=/opt/venv/lib/python3.11/site-packages \
    && rm -rf "$site/control" /opt/venv/bin/mlstack /opt/venv/bin/mlstack-train \
    && find "$site/training" -type f ! -name '__init__.*' ! -name 'contract.*' ! -name 'mlmodel.*' -delete \
    && sh /usr/local/bin/mlstack-trim /opt/venv


# The service's filesystem, made in a stage that still has a shell, then copied whole into an
# empty image: the shells, the base's documentation and the interpreter's unused parts are not
# hidden under a later layer but absent, and the image is one layer.
FROM runtime AS inference-root
COPY --from=inference-build /opt/venv /opt/venv
COPY hack/images/trim.sh /usr/local/bin/mlstack-trim
RUN mkdir -p /var/cache/mlstack \
    && chown 10001:10001 /var/cache/mlstack \
    && sh /usr/local/bin/mlstack-trim --system \
    && rm -f /usr/local/bin/mlstack-trim /bin/sh /bin/bash /bin/dash /bin/rbash /usr/bin/sh \
        /usr/bin/bash /usr/bin/dash /usr/bin/rbash


FROM scratch AS inference
ARG VERSION=0.1.0
ARG BASE_IMAGE
COPY --from=inference-root / /
LABEL org.opencontainers.image.title="mlstack-inference" \
      org.opencontainers.image.description="mlstack inference service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLSTACK_CACHE_DIR=/var/cache/mlstack
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
CMD ["python", "-m", "app", "--host", "0.0.0.0", "--port", "8080"]
