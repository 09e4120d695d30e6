# syntax=docker/dockerfile:1
#
# infermeter: the sidecar (default command `serve`) and the simulated LLM server
# (`simulate`) in one small image. Build: docker build -t infermeter .
# Run:   docker run -p 8100:8100 infermeter serve --upstream http://my-llm:8000

ARG PYTHON_VERSION=3.12

# Build stage: install the package and its dependencies into a virtual environment.
# Everything installs from wheels, but the build tooling pip pulls in stays here.
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# With the [otel] extra: tracing turns on by the standard OTEL_* variables, no rebuild.
RUN pip install --no-cache-dir ./[otel]

# Runtime stage: the same base, the virtual environment, and nothing else.
FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="infermeter" \
      org.opencontainers.image.description="Observability sidecar for LLM inference servers" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin infermeter
COPY --from=build /opt/venv /opt/venv
# The CLI reads INFERMETER_HOST and INFERMETER_PORT, and so does the health check below:
# change the port through INFERMETER_PORT (not --port) and both follow.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INFERMETER_HOST=0.0.0.0 \
    INFERMETER_PORT=8100
USER 10001:10001
EXPOSE 8100
# The slim image has no curl: Python's urllib asks /healthz (the proxy process lives).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INFERMETER_PORT', '8100'), timeout=2)"]
ENTRYPOINT ["infermeter"]
CMD ["serve"]
