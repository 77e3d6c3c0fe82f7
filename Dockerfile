# Image of the budgetvakt stream worker (and the other `budgetvakt` commands) for docker-compose.yml.
# Installs the locked dependencies (constraints.txt), then the project itself, non-editable.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BUDGETVAKT_CONFIG_DIR=/app/config \
    BUDGETVAKT_DATA_DIR=/data \
    BUDGETVAKT_WEB_HOST=0.0.0.0 \
    BUDGETVAKT_WEB_PORT=6066 \
    BUDGETVAKT_LOG_FORMAT=json

WORKDIR /app

# Dependencies first, in a layer of their own: a code change does not reinstall them. They are the
# [project] dependencies of pyproject.toml at the versions of constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" \
        > /tmp/requirements.txt \
    && python -m pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the code (the packages of [tool.setuptools.packages.find]), installed without dependencies.
COPY README.md ./
COPY core ./core
COPY contract ./contract
COPY forecasts ./forecasts
COPY streams ./streams
COPY services ./services
RUN python -m pip install --no-deps .

# The config is read at run time from BUDGETVAKT_CONFIG_DIR; mount another one to override it.
COPY config ./config

RUN useradd --system --uid 10001 --home-dir /data budgetvakt \
    && mkdir -p /data && chown budgetvakt /data
USER budgetvakt
VOLUME ["/data"]
EXPOSE 6066

CMD ["budgetvakt", "worker"]
