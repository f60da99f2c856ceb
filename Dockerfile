# withdrawal-sentinel application image: one image, two processes.
#   worker  (default): python worker.py
#   gateway:           uvicorn gateway.app:app --host 0.0.0.0 --port 8700   (set in docker-compose.yml)
# Build: docker build -t withdrawal-sentinel:0.1.0 .
FROM python:3.11.15-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Unprivileged runtime user (fixed uid/gid so volume permissions and runAsNonRoot checks are stable).
RUN groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid sentinel --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin sentinel

WORKDIR /app

# The source stays in /app and the processes start from it: worker.py and
# `uvicorn gateway.app:app` import the packages from the working directory, so paths
# relative to the repository root (config/delays.yaml, notice_policy.yaml) resolve.
COPY . .
# The development API keys are public (.dockerignore keeps them out; this fails the build if
# they got in anyway): the gateway reads the keys file mounted at SENTINEL_API_KEYS_FILE.
RUN test ! -e config/api_keys.dev.yaml
# The same for the reviewer console's development accounts (SENTINEL_REVIEWERS_FILE is mounted).
RUN test ! -e config/reviewers.dev.yaml
# Bytecode is compiled here once (PYTHONDONTWRITEBYTECODE keeps Python from writing it at run
# time): the workflow sandbox re-imports the workflow modules for every workflow it runs,
# and without a .pyc each import compiles the source again (docs/benchmarks.md).
RUN pip install ".[postgres]" \
 && python -m compileall -q workflows sentinel channels activities notifiers store gateway starter \
 && rm -rf build ./*.egg-info \
 && mkdir -p /app/.data \
 && chown sentinel:sentinel /app/.data

USER 10001:10001

EXPOSE 8700

CMD ["python", "worker.py"]
