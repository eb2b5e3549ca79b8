# One image for the operator and its stream workers (the Jobs run `smart-resume worker`).
FROM python:3.11-slim

RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent smart-resume
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir . && rm -rf /src

USER 10001:10001
ENTRYPOINT ["smart-resume"]
CMD ["operator", "--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"]
