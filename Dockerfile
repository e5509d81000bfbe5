# The worker image: `docker compose up --build` (docker-compose.yml) runs two of these.
FROM python:3.11-slim
WORKDIR /app
ENV STREAMPROC_SCHEMAS_DIR=/app/schemas
COPY pyproject.toml README.md ./
COPY streamproc ./streamproc
COPY schemas ./schemas
COPY runbooks ./runbooks
RUN pip install --no-cache-dir . && useradd --system --uid 10001 streamproc
USER streamproc
CMD ["streamproc", "worker"]
