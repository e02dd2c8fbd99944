# One image for both roles: `conductor server` (API + scheduler) and `conductor worker` (a node).
# Jobs run inside the worker's container, so add there what your jobs need.
FROM python:3.11-slim

# procps gives jobs `ps`.
RUN apt-get update && apt-get install -y --no-install-recommends procps && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/conductor
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .

ENV CONDUCTOR_HOME=/var/lib/conductor
VOLUME /var/lib/conductor
EXPOSE 8000
CMD ["conductor", "server", "--host", "0.0.0.0"]
