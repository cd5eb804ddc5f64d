# paycore image: multi-stage. The build stage installs the runtime dependencies
# into a virtualenv from wheels only (--only-binary: a dependency without a
# wheel fails the build rather than pulling in a compiler); the final stage is
# the slim Python base, that virtualenv and the source, run as a non-root user.
# No compiler, headers or pip in the final virtualenv.
#
#   docker build -t paycore .                                   # the production image
#   docker build --target simulators -t paycore-simulators .    # the channel simulators (dev, demo, load tests)
#   docker run --rm paycore --help
# The production image holds config/, channels/ (the adapters) and paycore/
# only: no simulator, no development key, no dev stack. The compose stack
# (deploy/docker-compose.yml) runs it as the API and the settlement consumer,
# and the simulators image beside it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml ./
# the [project] dependencies, pinned in pyproject.toml (the package itself is run from /app)
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && python -m venv /opt/paycore \
 && /opt/paycore/bin/pip install --only-binary=:all: -r requirements.txt \
 && /opt/paycore/bin/pip uninstall -y setuptools pip \
 && find /opt/paycore -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS simulators
LABEL org.opencontainers.image.title="paycore-simulators" \
      org.opencontainers.image.description="The twelve channel simulators of paycore: development and load tests only"
RUN groupadd --system --gid 10001 paycore \
 && useradd --system --uid 10001 --gid paycore --home-dir /var/lib/paycore --create-home --shell /usr/sbin/nologin paycore
COPY --from=build /opt/paycore /opt/paycore
WORKDIR /app
COPY config ./config
COPY channels ./channels
COPY paycore ./paycore
COPY simulators ./simulators
COPY devstack ./devstack
ENV PATH=/opt/paycore/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAYCORE_HOST=0.0.0.0 \
    PAYCORE_PORT=8080
USER paycore
EXPOSE 9101-9112
ENTRYPOINT ["python", "-m", "devstack.compose"]

FROM ${PYTHON_IMAGE} AS paycore
LABEL org.opencontainers.image.title="paycore" \
      org.opencontainers.image.description="Aggregated payment platform: one signed API in front of twelve channels"
RUN groupadd --system --gid 10001 paycore \
 && useradd --system --uid 10001 --gid paycore --home-dir /var/lib/paycore --create-home --shell /usr/sbin/nologin paycore
COPY --from=build /opt/paycore /opt/paycore
WORKDIR /app
COPY config ./config
COPY channels ./channels
COPY paycore ./paycore
ENV PATH=/opt/paycore/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAYCORE_HOST=0.0.0.0 \
    PAYCORE_PORT=8080
USER paycore
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "paycore.cli"]
CMD ["serve"]
