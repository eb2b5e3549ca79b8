# One image for the operator and its stream workers (the Jobs run `smart-resume worker`).
FROM python:3.11-slim

RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent smart-resume
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir . && rm -rf /src

# glibc gives every thread an arena of its own; the operator's handler threads then keep the
# high-water mark of a burst of runs as RSS. Two arenas measured 15 % less after a 200-run burst.
ENV MALLOC_ARENA_MAX=2
USER 10001:10001
ENTRYPOINT ["smart-resume"]
CMD ["operator", "--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"]
