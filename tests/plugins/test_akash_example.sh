#!/usr/bin/env bash
# docs/market_akash.md's example configuration is valid: `steward check` loads
# examples/akash/steward.jsonc with market_akash (its SDL template path, auditors and filters
# validated by the plugin itself) without touching the network. The API key variable is set
# to a dummy value; the check must never print it.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ -n "${STEWARD_BIN:-}" ] && [ -x "$STEWARD_BIN" ] || { echo "SKIP: no steward binary" >&2; exit 77; }
new_workdir
log="$WORKDIR/check.log"
secret="dummy-akash-key-$$-never-printed"
AKASH_API_KEY="$secret" STEWARD_PLUGIN_PATH="$SW_PLUGIN_DIR" \
  "$STEWARD_BIN" check -c "$SW_SOURCE_DIR/examples/akash/steward.jsonc" >"$log" 2>&1 \
  || fail "steward check refused the example"
grep -q "market market_akash" "$log" || fail "the example does not use market_akash"
if grep -q "$secret" "$log"; then fail "the API key was printed"; fi
# Without the key the plugin refuses to load, naming the variable, not a value.
if env -u AKASH_API_KEY STEWARD_PLUGIN_PATH="$SW_PLUGIN_DIR" \
  "$STEWARD_BIN" check -c "$SW_SOURCE_DIR/examples/akash/steward.jsonc" >"$log" 2>&1; then
  fail "the example loaded without AKASH_API_KEY"
fi
grep -q "AKASH_API_KEY" "$log" || fail "the error does not name AKASH_API_KEY"
echo "ok"
