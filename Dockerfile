# The service image: dependencies from uv.lock, settings from the environment (EXCHANGE_*).
FROM python:3.11-slim

ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PYTHONUNBUFFERED=1 \
    EXCHANGE_DATA_DIR=/data EXCHANGE_LOG_FORMAT=json
RUN pip install --no-cache-dir "uv==0.13.9"
# Report charts draw Chinese text with a CJK font found through fontconfig (api/charts.py).
RUN apt-get update && apt-get install -y --no-install-recommends fontconfig fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY api api
COPY catalog catalog
COPY exchange exchange
COPY ledger ledger
RUN uv sync --locked --no-dev

VOLUME /data
EXPOSE 8000
# Migrates the database on start, then serves.
CMD ["uv", "run", "--no-sync", "exchange", "serve", "--host", "0.0.0.0", "--port", "8000"]
