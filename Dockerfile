# syntax=docker/dockerfile:1
#
# infermeter: the sidecar (default command `serve`) and the simulated LLM server
# (`simulate`) in one small image.
# Build: docker build -t localhost/infermeter:local .
#        podman build --format docker -t localhost/infermeter:local .
#        (podman's default OCI format has no HEALTHCHECK and drops it without an error)
# Run:   docker run -p 8100:8100 localhost/infermeter:local serve --upstream http://my-llm:8000

# The Python the project's CI tests with.
ARG PYTHON_VERSION=3.11

# Build stage: install the package and its dependencies into a virtual environment.
# Everything installs from wheels, but the build tooling pip pulls in stays here.
FROM docker.io/library/python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The dependencies first, in a layer of their own: a change to the code or the README
# reinstalls only the package (seconds), not its 80 MB of dependencies. That install needs
# the version (proxy/__init__.py) and a README file (any, here). With the [otel] extra:
# tracing turns on by the standard OTEL_* variables, no rebuild.
COPY pyproject.toml ./
COPY proxy/__init__.py ./proxy/
RUN touch README.md && pip install --no-cache-dir ./[otel]
COPY README.md ./
COPY proxy ./proxy
# Then the venv drops its installers (pip last, as it removes itself): the runtime never
# installs anything, and they are 20 MB.
RUN pip install --no-cache-dir --no-deps --force-reinstall . \
    && pip uninstall --yes --quiet setuptools pip

# Runtime stage: the same base, the virtual environment, and nothing else.
FROM docker.io/library/python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="infermeter" \
      org.opencontainers.image.description="Observability sidecar for LLM inference servers" \
      org.opencontainers.image.licenses="Apache-2.0"
# A user and a group of its own, both 10001, so files it writes to a mounted volume have
# an owner a host can grant to. Not a system account: those ids stop at 999 (SYS_UID_MAX).
RUN groupadd --gid 10001 infermeter \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --no-log-init infermeter
COPY --from=build /opt/venv /opt/venv
# Listen on every interface of the container (serve, and simulate), or -p cannot reach it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INFERMETER_HOST=0.0.0.0 \
    INFERMETER_PORT=8100 \
    INFERMETER_SIM_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8100
# Asks the running command the question that fits it, where it listens: serve's /healthz
# on its --port or INFERMETER_PORT (and --admin-prefix), simulate's /health, the demo's
# /healthz; load is healthy while it runs. It reads the process's argv and environment
# from /proc (proxy/healthcheck.py). The slim image has no curl, and needs none.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-m", "proxy.healthcheck"]
ENTRYPOINT ["infermeter"]
CMD ["serve"]
