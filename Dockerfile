FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gridmap ./gridmap
RUN pip install --no-cache-dir .
ENV GRIDMAP_VAR_DIR=/app/var
EXPOSE 8050
CMD ["gridmap", "serve", "--host", "0.0.0.0"]
