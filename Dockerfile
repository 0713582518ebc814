FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e . && useradd --system stories && mkdir -p /data && chown stories /data
USER stories
ENV FEDIVERSE_STORIES_DATA_DIR=/data
EXPOSE 8000
CMD ["fediverse-stories", "serve", "--host", "0.0.0.0", "--port", "8000"]
