# One image for every Python service of docker-compose.yml: the Dagster code server (which also
# runs the runs), the Dagster webserver and daemon, and the MLflow tracking server.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    OKR_HOME=/okr

RUN groupadd --system --gid 10001 okr \
 && useradd --system --uid 10001 --gid okr --home-dir /opt/dagster --no-create-home okr

WORKDIR /opt/dagster/app

# The pinned dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY okr_assets ./okr_assets
RUN pip install --no-deps . && rm -rf build

# The deployment instance config (PostgreSQL; every connection setting from DAGSTER_PG_*) and the
# workspace of the webserver and daemon. Volumes mounted on the folders below start owned by okr.
COPY dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml
RUN mkdir -p /okr/landing /okr/quarantine /opt/dagster/home/storage /mlartifacts \
 && chown -R okr:okr /okr /opt/dagster/home/storage /mlartifacts

USER okr
WORKDIR /opt/dagster
EXPOSE 3000 4000 5000
CMD ["dagster", "code-server", "start", "-m", "okr_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]
