# The worker image: `docker compose up --build` (docker-compose.yml) runs two of these.
FROM python:3.11-slim
WORKDIR /app
# /app stays root-owned and read-only to the worker: its local files go to STREAMPROC_STATE_DIR
ENV STREAMPROC_SCHEMAS_DIR=/app/schemas \
    STREAMPROC_STATE_DIR=/var/lib/streamproc
COPY pyproject.toml README.md ./
COPY streamproc ./streamproc
COPY schemas ./schemas
COPY runbooks ./runbooks
RUN pip install --no-cache-dir . && useradd --system --uid 10001 streamproc \
    && install -d -o streamproc -m 0700 /var/lib/streamproc
USER streamproc
CMD ["streamproc", "worker"]
