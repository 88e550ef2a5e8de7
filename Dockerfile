# One image for every jobstream process (JobService, workers, SSE bridge, provisioning, model training);
# docker-compose.yml picks the process with `command:`. Dependencies come from uv.lock, exactly pinned.
FROM python:3.11-slim

# The same uv as scripts/bootstrap; never let it fetch a Python (the image's 3.11 is the interpreter).
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app

# Dependencies first, in their own layer: a source change does not reinstall them. Neither the dev group
# (tests, linters), nor the bench group, nor the servers group (the Triton wheel: in compose, Triton is its own
# official image).
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-group servers --no-group bench --no-install-project

COPY jobstream ./jobstream
COPY services ./services
COPY workers ./workers
COPY sse_bridge ./sse_bridge
COPY devstack ./devstack
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-group servers --no-group bench

# An unprivileged user; /var/lib/jobstream is where compose mounts the shared API-keys volume (a new named
# volume takes the ownership of the directory it is mounted over).
RUN useradd --system --uid 10001 --home-dir /app jobstream \
    && mkdir -p /var/lib/jobstream /app/.state \
    && chown jobstream /var/lib/jobstream /app/.state
USER jobstream

CMD ["python", "-m", "services.job_service"]
