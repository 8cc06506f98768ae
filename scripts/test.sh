#!/usr/bin/env bash
# The README's test command, and CI's (.ci/run). Every run builds fresh virtual
# environments in .venv-ci/ (git-ignored) and installs the project into them, so the
# dependencies resolve exactly as a new user's `pip install` resolves them today. Passes:
#   newest  python3 (>= 3.11), '.[dev]' at today's newest versions: ruff, mypy, the
#           whole test suite and the tutorials (nbval). The suite includes
#           tests/reliability: the short soak and load, the faults, every bad-input and
#           security test (benchmarks/reliability.py is their full-size run).
#   lower   the same Python, every dependency at the lowest version pyproject.toml
#           claims (scripts/lower_bounds.py): the unit tests.
#   py3.13  CPython 3.13 (on PATH or from pyenv; skipped, saying so, when missing): the
#           unit tests and the tunnel tests.
# Arguments are extra pytest options for every pass (.ci/run gives -q).
# TEST_PASSES="newest lower py3.13" (the default) picks passes.
set -euo pipefail
shopt -s inherit_errexit  # a failing command inside $(...) fails the pass too
cd "$(dirname "$0")/.."
ROOT=$PWD
VENVS=$ROOT/.venv-ci
PASSES=${TEST_PASSES:-newest lower py3.13}

# The unit tests: everything but the end-to-end lifecycles (deploy, tunnel, magics and
# CLI on a live sandbox deployment), the browser and the slow tests.
UNIT=(
  tests -m "not browser and not slow"
  --ignore=tests/test_browser.py --ignore=tests/test_quickstart.py
  --ignore=tests/test_cluster.py --ignore=tests/test_cluster_faults.py
  --ignore=tests/test_cluster_images.py --ignore=tests/test_cluster_ownership.py
  --ignore=tests/test_namespace_admin.py --ignore=tests/test_cli_cluster.py
  --ignore=tests/test_cli_logs.py --ignore=tests/test_cli_output.py
  --ignore=tests/test_runner_cluster.py --ignore=tests/test_jupyter_extension.py
  --ignore=tests/test_notebooks.py --ignore=tests/test_tunnel.py
  --ignore=tests/test_time_to_ready.py --ignore=tests/reliability
)
TUNNEL=(tests/test_tunnel.py)

# -- what the machine needs besides Python ---------------------------------------------
# The tunnel's native pump (arkouda_k8s/_pump.c) is compiled at install: gcc and the
# OpenSSL headers. Without them the install still succeeds (asyncio pump), but CI wants both.
if ! command -v gcc >/dev/null 2>&1 || [ ! -f /usr/include/openssl/ssl.h ]; then
  (apt-get update -qq && apt-get install -y -qq gcc libssl-dev) >/dev/null 2>&1 \
    || echo "WARNING: gcc/libssl-dev could not be installed" >&2
fi
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

# -- helpers ---------------------------------------------------------------------------
# venv NAME PYTHON EXTRAS: a new environment with the project (editable, as the README
# installs it) and the arkouda client; prints its python.
venv() {
  local dir=$VENVS/$1 python=$2 extras=$3
  rm -rf "$dir"
  "$python" -m venv "$dir" >&2
  # pip's full output only when it fails (it names the conflicting requirements)
  if ! "$dir/bin/python" -m pip install --disable-pip-version-check -e ".[$extras]" \
    >"$dir/pip.log" 2>&1; then
    grep -v "^WARNING: Location" "$dir/pip.log" >&2
    return 1
  fi
  # The only installable arkouda client (2020.7.7), placed without running its build.
  "$dir/bin/python" scripts/install_arkouda_client.py >&2
  if [ "$(uname -s)" = Linux ] && command -v gcc >/dev/null 2>&1; then
    "$dir/bin/python" -c 'import arkouda_k8s._pump' || {
      echo "the tunnel's native pump was not built for $1 (see pip's output above)" >&2
      return 1
    }
  fi
  echo "$dir/bin/python"
}

# Python 3.13 wherever it is: on PATH, or any pyenv's 3.13.x (newest first).
find_python313() {
  local candidates=() root python
  command -v python3.13 >/dev/null 2>&1 && candidates+=("$(command -v python3.13)")
  for root in "${PYENV_ROOT:-}" "$HOME/.pyenv" "$(pyenv root 2>/dev/null || true)"; do
    [ -n "$root" ] || continue
    while IFS= read -r python; do
      candidates+=("$python")
    done < <(printf '%s\n' "$root"/versions/3.13.*/bin/python3 | sort -rV)
  done
  for python in "${candidates[@]}"; do
    if "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
      echo "$python"
      return 0
    fi
  done
  return 1
}

pass_newest() {
  local py
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "python3 is $(python3 -V 2>&1); arkouda-k8s needs 3.11 or newer" >&2; return 1; }
  py=$(venv newest python3 dev)
  "$py" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(ipython|kubernetes|numpy|aiohttp|cryptography|mypy|ruff|pytest) ' || true
  "$py" -m ruff check .
  "$py" -m ruff format --check .
  "$py" -m mypy
  "$py" -m pytest "$@"
  # The tutorials: every notebook re-run, each cell's output compared with the stored one
  # (notebooks/conftest.py applies notebooks/nbval-sanitize.cfg; docs/tutorials.md).
  "$py" -m pytest --nbval notebooks/ -p no:cacheprovider "$@"
}

pass_lower() {
  local py
  mkdir -p "$VENVS"
  python3 scripts/lower_bounds.py >"$VENVS/lower-bounds.txt"
  # every pip call of this pass (the client's installer too) keeps to the lower bounds
  py=$(PIP_CONSTRAINT=$VENVS/lower-bounds.txt venv lower python3 notebook,jupyter,sandbox,test)
  "$py" -m pytest "${UNIT[@]}" "$@"
}

pass_py313() {
  local python py
  if ! python=$(find_python313); then
    echo "SKIPPED: no CPython 3.13 found (not on PATH, not in pyenv): its pass did not run"
    return 0
  fi
  py=$(venv py3.13 "$python" notebook,jupyter,sandbox,test)
  "$py" -m pytest "${UNIT[@]}" "${TUNNEL[@]}" "$@"
}

# -- run every pass; report each -------------------------------------------------------
summary=()
failed=0
for name in $PASSES; do
  case $name in
    newest | lower | py3.13) ;;
    *) echo "TEST_PASSES: unknown pass '$name' (use newest, lower, py3.13)" >&2; exit 2 ;;
  esac
  echo "=== pass $name ==="
  start=$SECONDS
  # errexit holds inside the subshell only if its status is not tested at once
  set +e
  (set -e; "pass_${name//./}" "$@")
  status=$?
  set -e
  if [ $status -eq 0 ]; then result=passed; else result=FAILED; failed=1; fi
  summary+=("$name: $result in $((SECONDS - start)) s")
done
echo "=== summary ==="
printf '%s\n' "${summary[@]}"
exit $failed
