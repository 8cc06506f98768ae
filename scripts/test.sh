#!/usr/bin/env bash
# Install the project with its test dependencies, then run lint, types and the tests.
# Works on a fresh machine (Python 3.11 + pip); called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tunnel's native pump (arkouda_k8s/_pump.c) is compiled at install: gcc and the
# OpenSSL headers. Without them the install still succeeds (asyncio pump), but CI wants both.
if ! command -v gcc >/dev/null 2>&1 || [ ! -f /usr/include/openssl/ssl.h ]; then
  (apt-get update -qq && apt-get install -y -qq gcc libssl-dev) >/dev/null 2>&1 \
    || echo "WARNING: gcc/libssl-dev could not be installed" >&2
fi
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
python3 -c 'import arkouda_k8s._pump' \
  || { echo "the tunnel's native pump was not built (see pip's output above)" >&2; exit 1; }
# The only installable arkouda client (2020.7.7), placed without running its build.
python3 scripts/install_arkouda_client.py
# kubectl: the machine image normally has it; Debian's client is the fallback.
if ! command -v kubectl >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq kubernetes-client) >/dev/null 2>&1 \
    || echo "WARNING: no kubectl could be installed; kubectl tests will be skipped" >&2
fi

# The sandbox runs each container over a model of its image: OpenSSH's sshd (only ever
# inside pods, on pod addresses) and client, and sudo, as the Arkouda images have them.
# Without them (or without root) containers run as plain processes and the tests that
# need the image models are skipped, saying why.
if [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/bin/ssh ] || [ ! -x /usr/bin/sudo ]; then
  (apt-get update -qq && apt-get install -y -qq openssh-server openssh-client sudo) >/dev/null 2>&1 \
    || echo "WARNING: openssh-server/sudo could not be installed; container tests will be skipped" >&2
fi

# Chromium for the browser tests: Debian's package (Playwright never downloads a browser).
if [ ! -x /usr/bin/chromium ]; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "WARNING: chromium could not be installed; the browser tests will be skipped" >&2
fi

python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy
python3 -m pytest "$@"
# The tutorials: every notebook re-run, each cell's output compared with the stored one
# (notebooks/conftest.py applies notebooks/nbval-sanitize.cfg; docs/tutorials.md).
python3 -m pytest --nbval notebooks/ -p no:cacheprovider -q
