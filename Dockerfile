# syntax=docker/dockerfile:1
# The serving image of seqboltz: `seqboltz serve` from the torch-free install (the `serve` and
# `speech` extras: onnxruntime, grpcio, WORLD vocoder; no torch, no Lightning), as a non-root
# user, with the model repository as a mounted volume. It also runs `seqboltz synthesize`
# (deploy/jobs/). Not built here: this machine has no Docker engine and reaches no base-image
# registry (see deploy/README.md).
#   docker build -t seqboltz-serve:0.1.0 .
#   docker run --rm -p 50051:50051 -p 9100:9100 -v "$PWD/models:/models:ro" seqboltz-serve:0.1.0
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# pyworld and pysptk build from source
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY seqboltz ./seqboltz
COPY serving ./serving
RUN python -m venv /opt/seqboltz \
    && /opt/seqboltz/bin/pip install --no-cache-dir ".[serve,speech]" \
    && if /opt/seqboltz/bin/pip show torch lightning >/dev/null 2>&1; then \
         echo "the training stack came with the serving install" >&2; exit 1; fi

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 seqboltz \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin seqboltz \
    && mkdir /models && chown 10001:10001 /models
COPY --from=build /opt/seqboltz /opt/seqboltz
COPY deploy/kubernetes/serve.toml /etc/seqboltz/serve.toml
ENV PATH=/opt/seqboltz/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SEQBOLTZ_CONFIG=/etc/seqboltz/serve.toml
VOLUME ["/models"]
USER 10001:10001
EXPOSE 50051 9100
ENTRYPOINT ["seqboltz", "serve"]
