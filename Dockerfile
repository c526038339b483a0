# syntax=docker/dockerfile:1
# The benchmark suite in a container for a CUDA machine: PyTorch's official runtime image (torch 2.11, CUDA 12.8,
# cuDNN 9) with trainperf and its dependencies at pinned versions. torch and torchvision stay the
# image's own: the machine key (and so the baseline file) is keyed on them.
#
#   docker compose build && docker compose run --rm trainperf        # see compose.yaml
FROM pytorch/pytorch:2.11.0-cuda12.8-cudnn9-runtime

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# One layer for the dependencies, before the source, so editing trainperf does not reinstall them. These versions
# pass the project's tests together on Python 3.11, the image's Python (scipy 1.18 needs 3.12, so 1.17 here).
# matplotlib is for `trainperf report --plot`.
RUN python -m pip install \
        pytest==9.2.0 \
        pytest-benchmark==5.3.1 \
        nvidia-ml-py==13.615.71 \
        pandas==3.1.1 \
        scipy==1.17.1 \
        matplotlib==3.11.2

# A non-root user with uid 1000 (Ubuntu 24.04 images already have one, `ubuntu`, which makes way). compose.yaml
# may run the container as another uid, to write into bind mounts that uid owns, so the home directory is
# writable by anyone, for the Triton and matplotlib caches.
RUN if id ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && useradd --create-home --uid 1000 --shell /bin/bash trainperf \
    && chmod 1777 /home/trainperf
# No .pytest_cache: /work is not writable by another uid, and with the project's filterwarnings = error an
# unwritable cache directory ends the run with a traceback.
ENV HOME=/home/trainperf \
    USER=trainperf \
    PYTEST_ADDOPTS="-p no:cacheprovider"

WORKDIR /work
COPY --chown=trainperf:trainperf . /work
# --no-deps: the dependencies are the pinned ones above and torch/torchvision are the image's, so pip never
# replaces them with a build for another CUDA. The assertion fails the build if anything did.
RUN python -m pip install --no-deps . \
    && python -c "import torch, torchvision; assert torch.__version__.startswith('2.11.0') and torch.version.cuda == '12.8', torch.__version__" \
    && rm -rf /work/build

USER 1000:1000
CMD ["pytest", "perf/", "--benchmark-autosave"]
