# Shared by scripts/test and scripts/demo: install what they need on a fresh Debian
# machine (Python venv with pinned deps, Debian's prometheus and, for the tests,
# victoria-metrics), idempotently.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq "$@" >/dev/null 2>&1 \
    || { as_root apt-get update -qq && as_root apt-get install -y -qq "$@"; }
}

ensure_prometheus() {
  # The tests and the demo start their own Prometheus on 127.0.0.1; the package's
  # service is not needed (it is not started where no init system runs).
  command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || apt_install prometheus
}

ensure_victoria_metrics() {
  # The receiver tests start their own single-node VictoriaMetrics on 127.0.0.1.
  command -v victoria-metrics >/dev/null || [ -x /usr/bin/victoria-metrics ] \
    || apt_install victoria-metrics
}

ensure_venv() {
  local py=${PYTHON:-python3}
  if ! "$py" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    apt_install python3 python3-venv python3-pip; py=python3
  fi
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv 2>/dev/null || { apt_install python3-venv && "$py" -m venv .venv; }
  fi
  # Reinstall only when the dependency pins or the project metadata changed.
  local stamp=.venv/.lbscrape-deps
  local want
  want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check \
      -c constraints.txt -e '.[test]' 2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" > "$stamp"
  fi
}
