# pointnormals on a CUDA GPU (multi-stage image).
#
#   docker build -t pointnormals:0.1.0 .
#   docker run --rm --gpus all pointnormals:0.1.0 train model=tf_pointnet trainer=gpu
#   docker run --rm --gpus all -v "$PWD:/data" pointnormals:0.1.0 predict /data/scan.ply
#
# Versions. The *_VERSION defaults below are the pins of pyproject.toml: tests/test_docker.py
# checks that, and `pip check` fails the build if an override drifts from them.
# CUDA. torch is the official cu126 build (CUDA 12.6: any driver >= 525 through CUDA's minor
# version compatibility; Volta to Hopper). torch-cluster is compiled here against that torch
# with nvcc 12.6 for TORCH_CUDA_ARCH_LIST. For Blackwell (sm_100/sm_120) use a newer toolkit:
#   --build-arg CUDA_VERSION=12.9.1 --build-arg TORCH_CUDA=cu129 \
#   --build-arg TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0;10.0;12.0+PTX"
# Layout. /opt/venv: the Python environment; /app (the working directory): train.py, predict.py,
# conf/, scripts/ and the writable data/ (dataset cache) and logs/ (runs: logs/train/runs/NAME);
# /cache: every cache (XDG, torch, wandb, triton, ...).

ARG CUDA_VERSION=12.6.3
ARG UBUNTU_VERSION=24.04

# ---------------------------------------------------------------------------------------------
# deps: the pinned Python stack in /opt/venv, torch-cluster built from source for CUDA.
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS deps

ARG PYTHON_VERSION=3.12
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu126
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_CUDA}
ARG TORCH_GEOMETRIC_VERSION=2.8.1
ARG TORCH_CLUSTER_VERSION=1.6.3
ARG LIGHTNING_VERSION=2.6.6
ARG HYDRA_VERSION=1.3.8
ARG WANDB_VERSION=0.31.0
ARG TENSORBOARD_VERSION=2.21.0
ARG PILLOW_VERSION=13.0.0
ARG SCIPY_VERSION=1.17.1
ARG PLYFILE_VERSION=1.1.5
ARG LASPY_VERSION=2.7.0
ARG LAZRS_VERSION=0.8.2
ARG NEO_LZF_VERSION=0.3.5
ARG OPEN3D_VERSION=0.20.0
ARG SETUPTOOLS_VERSION=84.2.1
ARG WHEEL_VERSION=0.48.0
# GPUs the torch-cluster kernels are compiled for: V100, A100, A10/A40/RTX 30xx, L4/L40/RTX 40xx,
# H100/H200 (+PTX: JIT-compiled on newer GPUs).
ARG TORCH_CUDA_ARCH_LIST="7.0;8.0;8.6;8.9;9.0+PTX"
# torch-cluster compiles one file at a time (its setup.py turns ninja off); nvcc compiles the
# architectures of a file in parallel threads.
ARG NVCC_THREADS=4

# Interpreter, its headers and a host compiler for nvcc (the apt archive is the version pin).
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-dev" "python${PYTHON_VERSION}-venv" g++ \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. torch alone, the CUDA build; every later pip call is constrained to this exact build, so
#    nothing can replace it with another torch.
RUN "python${PYTHON_VERSION}" -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}+${TORCH_CUDA}" \
    && echo "torch==${TORCH_VERSION}+${TORCH_CUDA}" > /opt/constraints.txt

# 2. torch-cluster is source-only and its setup.py imports torch: no build isolation. FORCE_CUDA
#    compiles the CUDA kernels without a GPU in the build machine.
RUN pip install --no-cache-dir --constraint /opt/constraints.txt \
        "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}" \
    && FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" \
        NVCC_APPEND_FLAGS="--threads ${NVCC_THREADS}" CXXFLAGS="-DNDEBUG -O2 -g0 -fwrapv" \
        pip install --no-cache-dir --no-build-isolation --constraint /opt/constraints.txt \
        "torch-cluster==${TORCH_CLUSTER_VERSION}"

# 3. the rest of pyproject.toml's dependencies, same pins and markers.
RUN pip install --no-cache-dir --constraint /opt/constraints.txt \
        "torch_geometric==${TORCH_GEOMETRIC_VERSION}" \
        "lightning==${LIGHTNING_VERSION}" \
        "hydra-core==${HYDRA_VERSION}" \
        "wandb==${WANDB_VERSION}" \
        "open3d-cpu==${OPEN3D_VERSION}; platform_machine == 'x86_64' and sys_platform == 'linux'" \
        "open3d==${OPEN3D_VERSION}; platform_machine != 'x86_64' or sys_platform != 'linux'" \
        "numpy>=1.26,<3" \
        "rich>=13" \
        "tensorboard==${TENSORBOARD_VERSION}" \
        "pillow==${PILLOW_VERSION}" \
        "scipy==${SCIPY_VERSION}" \
        "plyfile==${PLYFILE_VERSION}" \
        "laspy==${LASPY_VERSION}" \
        "lazrs==${LAZRS_VERSION}" \
        "python-neo-lzf==${NEO_LZF_VERSION}"

# ---------------------------------------------------------------------------------------------
# package: a wheel of pointnormals (with its shipped checkpoint), built apart from the
# dependencies so that a code change does not invalidate the multi-GB venv layer.
FROM deps AS package
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pointnormals/ ./pointnormals/
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
# runtime: CUDA base image (the driver comes from the host through the NVIDIA container
# toolkit; cuBLAS, cuDNN, NCCL come with the torch wheel), the venv, the app, a non-root user.
FROM nvidia/cuda:${CUDA_VERSION}-base-ubuntu${UBUNTU_VERSION} AS runtime

ARG PYTHON_VERSION=3.12
ARG APP_UID=1000
ARG APP_GID=1000

LABEL org.opencontainers.image.title="pointnormals" \
      org.opencontainers.image.description="O(3)-equivariant point-cloud normal estimation (CUDA)" \
      org.opencontainers.image.licenses="MIT"

# python (the venv's interpreter), Open3D's shared libraries (GL/EGL, libusb), OpenMP, CA
# certificates for wandb online, tini as PID 1 (forwards signals to the whole process group),
# Vulkan (loader + Mesa's software device) for Open3D's offscreen renderer (pictures).
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "python${PYTHON_VERSION}" libgl1 libegl1 libusb-1.0-0 libgomp1 ca-certificates tini \
        libvulkan1 mesa-vulkan-drivers \
    && rm -rf /var/lib/apt/lists/*

# The non-root user takes uid 1000 (Ubuntu 24.04 images ship a user `ubuntu` with it). The run
# and cache directories are world-writable (sticky, like /tmp) so that `--user $(id -u):$(id -g)`
# works as well.
RUN if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && groupadd --gid "$APP_GID" pointnormals \
    && useradd --no-log-init --uid "$APP_UID" --gid "$APP_GID" --create-home --shell /bin/bash pointnormals \
    && mkdir -p /app/data /app/logs /cache \
    && chown pointnormals:pointnormals /app/data /app/logs /cache \
    && chmod 1777 /app/data /app/logs /cache

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WANDB_MODE=offline \
    XDG_CACHE_HOME=/cache \
    TORCH_HOME=/cache/torch \
    HF_HOME=/cache/huggingface \
    WANDB_CACHE_DIR=/cache/wandb \
    WANDB_CONFIG_DIR=/cache/wandb-config \
    WANDB_DATA_DIR=/cache/wandb-data \
    MPLCONFIGDIR=/cache/matplotlib \
    TRITON_CACHE_DIR=/cache/triton \
    TORCHINDUCTOR_CACHE_DIR=/cache/torchinductor

COPY --from=deps /opt/venv /opt/venv

# The package, non-editable and without dependencies (they are all in the venv already); then
# `pip check` proves the venv satisfies pyproject.toml's pins.
RUN --mount=type=bind,from=package,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/pointnormals-*.whl \
    && pip check

WORKDIR /app
COPY conf/ ./conf/
COPY scripts/ ./scripts/
COPY train.py predict.py ./
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/pointnormals-docker

USER ${APP_UID}:${APP_GID}

# Build-time smoke test as the runtime user: the CUDA builds, Open3D's system libraries, the
# shipped checkpoint and both command lines.
RUN python -c "import importlib.resources as res, torch, torch_cluster, torch_geometric, open3d, lightning, hydra, wandb; \
assert torch.version.cuda, 'torch is a CPU build'; \
assert torch.ops.torch_cluster.cuda_version() > 0, 'torch-cluster was built without CUDA'; \
ckpts = [p.name for p in res.files('pointnormals').joinpath('checkpoints').iterdir() if p.name.endswith('.ckpt')]; \
assert ckpts, 'no shipped checkpoint in the installed package'; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'checkpoints', ckpts)" \
    && python /app/predict.py --help > /dev/null \
    && python /app/train.py --help > /dev/null \
    && pointnormals-docker --help > /dev/null

# Batch jobs, not a service: nothing to health-check.
HEALTHCHECK NONE

ENTRYPOINT ["/usr/bin/tini", "-g", "-s", "--", "/usr/local/bin/pointnormals-docker"]
CMD ["--help"]
