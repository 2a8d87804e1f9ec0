FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gridmap ./gridmap
RUN pip install --no-cache-dir .
ENV GRIDMAP_VAR_DIR=/app/var
EXPOSE 8050
# gunicorn, 2 worker processes sharing the data loaded before the fork (see README "Serving");
# docker-compose.yml runs the same command after building the demo database.
CMD ["gridmap", "serve", "--host", "0.0.0.0", "--port", "8050", "--workers", "2"]
