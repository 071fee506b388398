# mlstack images, built from the lock file (`uv sync --frozen`):
#   platform         the inference service (default command), the training round
#                    (`python -m training`) and the control plane (`mlstack`); dependencies of
#                    the `training` and `control` extras
#   tracking-server  the MLflow tracking server with PostgreSQL and S3 drivers (`tracking-server`
#                    extra)
# Written for the classic builder too (no BuildKit-only syntax). The classic builder builds every
# stage above the target, so `platform` is last and is the default target.
#
#   docker build --target tracking-server -t mlstack-tracking-server:0.1.0 .
#   docker build --target platform -t mlstack-platform:0.1.0 .
#
# BASE_IMAGE must provide python3.11 at the same path in every stage (the virtual environment is
# copied between stages); Debian bookworm images with Python 3.11 do.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

FROM ${BASE_IMAGE} AS uv
ARG UV_VERSION=0.13.9
RUN python3.11 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
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


FROM uv AS tracking-server-build
RUN /opt/uv/bin/uv sync --frozen --no-dev --extra tracking-server --no-install-project


FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system --gid 10001 mlstack \
    && useradd --system --uid 10001 --gid mlstack --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin mlstack
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp


FROM runtime AS tracking-server
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mlstack-tracking-server" \
      org.opencontainers.image.description="MLflow tracking server with PostgreSQL and S3 drivers" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=tracking-server-build /opt/venv /opt/venv
# One worker and no job runner: 2 processes instead of 13 (see the chart's values).
ENV MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
USER 10001:10001
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1"]


FROM uv AS platform-build
RUN /opt/uv/bin/uv sync --frozen --no-dev --extra training --extra control --no-install-project
COPY README.md ./
COPY app ./app
COPY training ./training
COPY control ./control
COPY kernel ./kernel
RUN /opt/uv/bin/uv sync --frozen --no-dev --extra training --extra control --no-editable


FROM runtime AS platform
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mlstack-platform" \
      org.opencontainers.image.description="mlstack inference service and training round" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=platform-build /opt/venv /opt/venv
RUN mkdir -p /var/cache/mlstack && chown 10001:10001 /var/cache/mlstack
ENV MLSTACK_CACHE_DIR=/var/cache/mlstack \
    MLSTACK_CODE_VERSION=${VERSION} \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
EXPOSE 8080
CMD ["python", "-m", "app", "--host", "0.0.0.0", "--port", "8080"]
