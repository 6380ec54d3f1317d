# syntax=docker/dockerfile:1
#
# lbscrape container image: `docker build -t lbscrape .`
# Stage 1 installs lbscrape and its dependencies, pinned by constraints.txt, into a venv in
# /opt/lbscrape and compiles their bytecode; stage 2 copies that venv alone onto a clean base
# and runs as a non-root user. Nothing is written at run time, so the container works with
# readOnlyRootFilesystem: true.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
# A venv without pip of its own: the base's pip installs into it (--python), so neither pip
# nor setuptools end up in /opt/lbscrape.
RUN python -m venv --without-pip /opt/lbscrape \
 && pip --python /opt/lbscrape/bin/python install --no-compile -c constraints.txt . \
 && pip --python /opt/lbscrape/bin/python check
# What lbscrape never loads (checked with an import trace of every command), removed here so
# that no layer holds it.
WORKDIR /opt/lbscrape/lib
# kubernetes (since 36) carries a second, asyncio client in kubernetes/aio: 69 MB with its
# bytecode, never imported by `import kubernetes` nor by lbscrape.
RUN rm -r python3.*/site-packages/kubernetes/aio
# kubernetes requires aiohttp and aiohttp-retry for that client only; they and what only
# aiohttp requires go too. pip check must then find nothing missing but those two.
RUN pip --python /opt/lbscrape/bin/python uninstall -y aiohttp aiohttp-retry \
      aiohappyeyeballs aiosignal attrs frozenlist multidict propcache yarl \
 && { pip --python /opt/lbscrape/bin/python check || true; } > /tmp/pip-check \
 && ! grep -v -E '^kubernetes [^ ]+ requires aiohttp(-retry)?, which is not installed\.$' \
      /tmp/pip-check \
 && rm /tmp/pip-check
# Bytecode for every module, since a read-only root filesystem cannot cache it: without it
# each start compiles everything in memory again. unchecked-hash pycs stay valid whatever
# the files' mtimes become (registries and layer tools may reset them).
RUN python -m compileall -q -j0 --invalidation-mode unchecked-hash /opt/lbscrape/lib \
 && /opt/lbscrape/bin/lbscrape --version


FROM python:3.11-slim
ENV PATH=/opt/lbscrape/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/lbscrape /opt/lbscrape
USER 65532:65532
ENTRYPOINT ["lbscrape"]
CMD ["run"]
