# taxi-luigi's two images, from one file (docs/docker.md):
#   docker build -t taxi-luigi .                          the pipeline (the last stage, the default)
#   docker build --target luigid -t taxi-luigi-luigid .   Luigi's central scheduler and visualizer
# Each runtime stage copies a finished virtualenv out of a build stage, runs as an unprivileged user,
# and keeps no pip cache or source tree. For reproducible builds pin the base by digest as well
# (python:3.11-slim-bookworm@sha256:...).

FROM python:3.11-slim-bookworm AS base
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# One fixed uid for both images, so volumes keep their owner across rebuilds; a home for ~/.pgpass.
RUN groupadd --gid 10001 taxi \
    && useradd --uid 10001 --gid taxi --create-home --home-dir /home/taxi --shell /usr/sbin/nologin taxi

# --- luigid: its own virtualenv. Luigi 3.8.1's task history needs SQLAlchemy 1.4; the pipeline has 2.x.
FROM base AS luigid-build
COPY scripts/luigid-requirements.txt /tmp/luigid-requirements.txt
RUN python -m venv /opt/luigid \
    && /opt/luigid/bin/pip install --no-cache-dir -r /tmp/luigid-requirements.txt

FROM base AS luigid
COPY --from=luigid-build /opt/luigid /opt/luigid
# /etc/luigi/luigi.cfg is on Luigi's own search path, so LUIGI_CONFIG_PATH stays free for an override.
COPY docker/luigid.cfg /etc/luigi/luigi.cfg
# The task history's URL comes from the environment (luigid.cfg reads ${LUIGID_HISTORY_URL}): SQLite in
# the volume unless a PostgreSQL URL is given, with its password in PGPASSWORD, never in a file.
ENV PATH=/opt/luigid/bin:$PATH \
    LUIGID_HISTORY_URL=sqlite:////var/lib/luigid/history.db
# Created before VOLUME and owned by taxi: a new named volume starts as a copy, writable by luigid.
RUN install -d -o taxi -g taxi /var/lib/luigid
VOLUME /var/lib/luigid
WORKDIR /var/lib/luigid
USER 10001:10001
EXPOSE 8082
# 0.0.0.0 inside the container; publish it on 127.0.0.1 only (docker-compose.yml does).
ENTRYPOINT ["luigid", "--address", "0.0.0.0", "--port", "8082"]

# --- pipeline: the package with the GCS/BigQuery and PostgreSQL backends.
FROM base AS pipeline-build
WORKDIR /src
# README.md: setup.cfg's long_description reads it at build time.
COPY pyproject.toml setup.cfg README.md ./
COPY taxi_luigi/ taxi_luigi/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir ".[gcp,postgres,zones]"

FROM base AS pipeline
COPY --from=pipeline-build /opt/venv /opt/venv
# The venv first: luigi, taxi-luigi and the python3 that scripts/cron-run falls back to.
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Luigi reads luigi.cfg from the working directory; LUIGI_CONFIG_PATH names one more file read after it.
COPY luigi.cfg ./
COPY scripts/ scripts/
COPY docker/worker.cfg docker/worker.cfg
# luigi.cfg's relative paths (data, data/lake, duckdb:///data/warehouse.duckdb) land in the volume
# through this link, so no override file is needed for them and LUIGI_CONFIG_PATH stays free.
RUN install -d -o taxi -g taxi /data \
    && ln -s /data /app/data
VOLUME /data
USER 10001:10001
ENTRYPOINT ["luigi", "--module", "taxi_luigi"]
CMD ["--help"]
