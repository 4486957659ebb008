# syntax=docker/dockerfile:1
# Build: docker build -t monitor .    Run: docker run -v monitor-data:/data monitor
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY monitor ./monitor
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -r requirements.lock \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim
RUN useradd --system --create-home --uid 10001 monitor && mkdir /data && chown monitor /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY feeds.yaml ./
COPY rules ./rules
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MONITOR_DATABASE_URL=sqlite:////data/monitor.db \
    MONITOR_FEEDS_FILE=/app/feeds.yaml \
    MONITOR_RULES_DIR=/app/rules
VOLUME /data
USER monitor
# The API inside the container listens on 127.0.0.1 unless MONITOR_API_HOST=0.0.0.0 and MONITOR_API_TOKEN
# are both given (then publish 8080). /healthz needs no token.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MONITOR_API_PORT', '8080') + '/healthz', timeout=4)"]
CMD ["monitor", "run"]
