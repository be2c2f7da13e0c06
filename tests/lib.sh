# Shared helpers for the shell-driven suites. Source it; it sets -u and a cleanup trap.
set -u

fail() {
  echo "FAIL: $*" >&2
  if [ -n "${log:-}" ] && [ -f "${log:-}" ]; then
    echo "--- last lines of $log" >&2
    tail -n 40 "$log" >&2
  fi
  exit 1
}

# A missing tool skips (exit 77) locally and fails under CI, where .ci/run installs it.
require_tool() {
  if ! command -v "$1" >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
      fail "$1 is not installed (CI must install it)"
    fi
    echo "SKIP: $1 is not installed" >&2
    exit 77
  fi
}

# The steward under test: ctest passes the build's binary in STEWARD_BIN.
require_steward() {
  [ -n "${STEWARD_BIN:-}" ] && [ -x "$STEWARD_BIN" ] ||
    fail "STEWARD_BIN is not set to the steward binary (run through ctest)"
}

SW_TEST_PIDS=()
SW_TEST_DIRS=()
sw_test_cleanup() {
  for pid in "${SW_TEST_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for dir in "${SW_TEST_DIRS[@]}"; do rm -rf "$dir"; done
}
trap sw_test_cleanup EXIT

# Sets WORKDIR to a fresh directory removed at exit (not in a subshell: the trap must
# see it).
new_workdir() {
  WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/steward-test.XXXXXX")
  SW_TEST_DIRS+=("$WORKDIR")
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick).
free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
