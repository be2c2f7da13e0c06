# Shared set-up of the benchmarks that run steward against a local `steward market serve`
# (bench_ml.sh, bench_market.sh). Source after setting src, build and bin (the steward binary).

# bench_setup NAME KEY_VAR TOOL...: exits 77 when a TOOL is missing and 1 without $bin;
# exports STEWARD_PLUGIN_PATH (the build's plugins) and a fresh STEWARD_MARKET_API_KEY, also
# under KEY_VAR (the variable the config's api_key_env names); makes work, a fresh directory
# (steward-bench-NAME.XXXXXX) removed at exit unless KEEP is set, and pids, the PIDs killed
# at exit.
bench_setup() {
  local name=$1 key_var=$2 t
  shift 2
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$t is not installed" >&2; exit 77; }
  done
  [ -x "$bin" ] || { echo "no $bin: run make build first" >&2; exit 1; }
  plugin_dir=$(dirname "$(find "$build" -name 'swp_market_akash.so' -print -quit)")
  export STEWARD_PLUGIN_PATH=$plugin_dir
  export STEWARD_MARKET_API_KEY="bench-key-$$-$RANDOM-zz9"
  export "$key_var=$STEWARD_MARKET_API_KEY"
  work=$(mktemp -d "${TMPDIR:-/tmp}/steward-bench-$name.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "workdir kept: $work" >&2 || rm -rf "$work"
}

now_ms() { date +%s%3N; }
ms_of() { # duration like 500ms / 2s -> ms
  case $1 in *ms) echo "${1%ms}" ;; *s) echo $((${1%s} * 1000)) ;; *) echo "$1" ;; esac
}
