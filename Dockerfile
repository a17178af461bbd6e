# User-code image for dagster-k8s: serves the code location over gRPC.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    IDENTITY_DATA_ENV=prod \
    GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false

# OpenMP runtime for onnxruntime and OpenCV wheels; slim images leave it out. `apt-get clean`
# drops the 77 MB package caches on bases without the docker-clean hook (mmdebstrap's).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 dagster
WORKDIR /opt/dagster/app

# Dependencies first, from the lock file only, so code changes reuse this cached layer. The lock is
# complete; --no-deps keeps mtcnn-runtime's GUI opencv-python requirement out of the image, and
# --require-hashes refuses any wheel whose sha256 differs from the lock's. --compile-bytecode:
# with PYTHONDONTWRITEBYTECODE and no .pyc, every run pod would compile dagster, pandas and the
# rest from source again (~7 CPU-s before its first step). uv itself (a 37 MB binary, also
# hash-checked) lives in /tmp for this one step only, so no layer of the image holds it.
COPY requirements.lock deploy/uv-bootstrap.lock ./
RUN pip install --no-deps --require-hashes --target /tmp/uv -r uv-bootstrap.lock \
    && /tmp/uv/bin/uv pip install --system --no-cache --no-deps --require-hashes \
       --compile-bytecode -r requirements.lock \
    && rm -rf /tmp/uv

# The project itself; pyproject.toml stays beside the code because load_from_defs_folder reads it.
# Built by the lock's setuptools (no build isolation, no index): nothing is downloaded here.
COPY pyproject.toml workspace.yaml dagster.yaml ./
COPY identity_data ./identity_data
RUN pip install --no-deps --no-build-isolation --no-index -e . \
    && python3 -m compileall -q identity_data

# Numeric, so a kubelet can prove `runAsNonRoot: true` without a runAsUser in the pod spec.
USER 10001:10001
EXPOSE 4000
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "4000", \
     "--module-name", "identity_data.definitions", "--attribute", "defs"]
