# syntax=docker/dockerfile:1
#
# lbscrape container image: `docker build -t lbscrape .`
# Stage 1 builds the lbscrape wheel and collects the wheels of its dependencies, pinned by
# constraints.txt; stage 2 installs them from those wheels only (no network) into the
# system site-packages and runs as a non-root user. Nothing is written at run time, so the
# container works with readOnlyRootFilesystem: true.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel --wheel-dir /wheels -c constraints.txt /wheels/lbscrape-*.whl


FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# The wheels are bind-mounted, not copied, so they add no layer to the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels lbscrape \
 && lbscrape --version
USER 65532:65532
ENTRYPOINT ["lbscrape"]
CMD ["run"]
