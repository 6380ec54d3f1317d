# lbscrape container image. Needs BuildKit (Docker 23 and later use it by default; podman
# and buildah support it too):
#   docker build -t lbscrape .
# Behind a TLS-intercepting proxy or with a private package index, all optional:
#   docker build --secret id=ca,src=corp-ca.pem \
#     --build-arg PIP_INDEX_URL=https://pypi.example.com/simple \
#     --secret id=netrc,src=$HOME/.netrc -t lbscrape .
# The CA bundle (PEM, added to the base image's CAs) and the netrc file (the index's
# credentials) are BuildKit secrets, mounted only while pip runs; the index URL is a build
# argument of the build stage. None of them reaches the final image or its history.
#
# Stage 1 installs lbscrape and its dependencies, pinned by constraints.txt, into a venv in
# /opt/lbscrape and compiles their bytecode; stage 2 copies that venv alone onto a clean base
# and runs as a non-root user. Nothing is written at run time, so the container works with
# readOnlyRootFilesystem: true.

FROM python:3.11-slim AS build
# No bytecode from the build's own imports (pip check, the model check): it is compiled
# once, at the end.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY lbscrape/ lbscrape/
# A URL without credentials (those go in the netrc secret); empty: pip's default index.
ARG PIP_INDEX_URL
# A venv without pip of its own: the base's pip installs into it (--python), so neither pip
# nor setuptools end up in /opt/lbscrape.
RUN --mount=type=secret,id=ca --mount=type=secret,id=netrc \
    set -e; \
    if [ -s /run/secrets/ca ]; then \
      cat /etc/ssl/certs/ca-certificates.crt /run/secrets/ca > /tmp/pip-ca.pem; \
      export PIP_CERT=/tmp/pip-ca.pem; \
    fi; \
    if [ -s /run/secrets/netrc ]; then export NETRC=/run/secrets/netrc; fi; \
    if [ -z "${PIP_INDEX_URL:-}" ]; then unset PIP_INDEX_URL; fi; \
    python -m venv --without-pip /opt/lbscrape; \
    pip --python /opt/lbscrape/bin/python install --no-compile -c constraints.txt .; \
    pip --python /opt/lbscrape/bin/python check; \
    rm -f /tmp/pip-ca.pem
# What lbscrape never loads (checked with an import trace of every command), removed here so
# that no layer holds it.
WORKDIR /opt/lbscrape/lib
# kubernetes (since 36) carries a second, asyncio client in kubernetes/aio: 68 MB with its
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
# botocore carries the API models of all 440 AWS services (21 MB). Kept: the ones
# lbscrape.aws.session names (the services it makes clients of, which its client() enforces,
# and those botocore's credential providers call). Each kept model is loaded as a check.
RUN keep="$(/opt/lbscrape/bin/python -c \
      'from lbscrape.aws.session import BOTOCORE_MODELS; print(*BOTOCORE_MODELS)')" \
 && [ -n "$keep" ] && echo "botocore models kept:" $keep \
 && for d in python3.*/site-packages/botocore/data/*/; do \
      case " $keep " in *" $(basename "$d") "*) ;; *) rm -r "$d" ;; esac; \
    done \
 && /opt/lbscrape/bin/python -c 'import sys, botocore.session; s = botocore.session.Session(); \
      [s.get_service_model(n) for n in sys.argv[1:]]' $keep
# Test suites that dependencies ship inside their package (websocket/tests, certifi/tests).
RUN find python3.*/site-packages -mindepth 2 -maxdepth 2 -type d -name tests -print \
      -exec rm -r {} +
# Bytecode for every module, since a read-only root filesystem cannot cache it: without it
# each start compiles everything in memory again. unchecked-hash pycs stay valid whatever
# the files' mtimes become (registries and layer tools may reset them). -f: compileall
# would keep any up-to-date timestamp pyc as it is.
RUN python -m compileall -f -q -j0 --invalidation-mode unchecked-hash /opt/lbscrape/lib \
 && /opt/lbscrape/bin/lbscrape --version


FROM python:3.11-slim
ENV PATH=/opt/lbscrape/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/lbscrape /opt/lbscrape
USER 65532:65532
ENTRYPOINT ["lbscrape"]
CMD ["run"]
