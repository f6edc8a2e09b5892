# flowgauge worker image: `docker compose build`, or `docker build -t flowgauge .`
# The default command is `flowgauge worker`; `flowgauge simulate ...` etc. work as commands too.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/flowgauge --create-home flowgauge

USER flowgauge
# In a container the metrics server must listen beyond loopback.
ENV FLOWGAUGE_WEB_HOST=0.0.0.0 \
    FLOWGAUGE_WEB_PORT=6066 \
    FLOWGAUGE_DATA_DIR=/var/lib/flowgauge
EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FLOWGAUGE_WEB_PORT', '6066'), timeout=4)"]

ENTRYPOINT ["flowgauge"]
CMD ["worker"]
