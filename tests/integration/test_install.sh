#!/usr/bin/env bash
# `cmake --install` into a fresh prefix lays out bin/, lib/steward/plugins/,
# share/steward/{lua,policies,examples}/, and the installed steward finds its plugins and
# Lua modules there without flags or environment: `steward plugins` lists them from the
# prefix, `steward check` accepts the installed demo and the deploy example (its /usr paths
# pointed at the prefix), and a short run evaluates the shipped policy.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool cmake
require_tool python3
require_tool readelf
require_tool dpkg

new_workdir
prefix="$WORKDIR/prefix"
cmake --install "$SW_BUILD_DIR" --prefix "$prefix" >"$WORKDIR/install.log" ||
  fail "cmake --install failed: $(tail -5 "$WORKDIR/install.log")"
bin="$prefix/bin/steward"
[ -x "$bin" ] || fail "no bin/steward"
for f in lib/steward/plugins/swp_market_sim.so lib/steward/plugins/swp_metrics_synthetic.so \
         share/steward/lua/steward/smooth.lua share/steward/policies/follow_demand.lua \
         share/steward/examples/demo/steward.jsonc share/steward/examples/providers/demo.json \
         share/steward/examples/deploy/steward.jsonc share/steward/examples/deploy/deploy.yaml \
         share/steward/examples/deploy/Dockerfile include/steward/swp_plugin.h; do
  [ -e "$prefix/$f" ] || fail "missing $f in the installed tree"
done

# The image's runtime stage installs the package of every library the installed steward and
# its plugins link directly (libc6 comes with the base image), so the image starts.
runtime=$(awk '/^FROM /{ text = "" } { text = text $0 "\n" } END { printf "%s", text }' \
  "$prefix/share/steward/examples/deploy/Dockerfile")
for f in "$bin" "$prefix"/lib/steward/plugins/*.so; do
  for soname in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path=$(ldd "$f" | awk -v s="$soname" '$1 == s { print $3 }')
    [ -n "$path" ] || fail "$f: $soname not found by ldd"
    pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path" 2>/dev/null || true)
    pkg=${pkg%%:*}
    [ -n "$pkg" ] || fail "$f: no Debian package owns $path"
    [ "$pkg" = libc6 ] && continue
    grep -qw -- "$pkg" <<<"$runtime" ||
      fail "the Dockerfile's runtime stage does not install $pkg ($soname, linked by ${f##*/})"
  done
done

# Nothing from the environment or the build tree may help it.
unset STEWARD_PLUGIN_PATH STEWARD_LUA_PATH
cd "$WORKDIR"
"$bin" plugins --json >plugins.json || fail "steward plugins"
python3 - "$prefix" <<'PY' || fail "steward plugins does not list the installed plugins: $(cat plugins.json)"
import json, os, sys
prefix = os.path.realpath(sys.argv[1])
found = {p["name"]: p for p in json.load(open("plugins.json"))}
for name in ("market_sim", "metrics_synthetic"):
    assert name in found, name
    assert os.path.realpath(found[name]["path"]).startswith(prefix + "/lib/steward/plugins/"), found[name]
    assert "error" not in found[name], found[name]
PY

demo="$prefix/share/steward/examples/demo/steward.jsonc"
"$bin" check -c "$demo" >check.txt 2>&1 || fail "steward check on the installed demo: $(cat check.txt)"
grep -q ': ok (' check.txt || fail "unexpected check output: $(cat check.txt)"

# The deploy example names /usr paths (the image's prefix): point them at ours.
sed "s#/usr/#$prefix/#g; s#/var/lib/steward/#$WORKDIR/#" \
  "$prefix/share/steward/examples/deploy/steward.jsonc" >deploy.jsonc
STEWARD_ADMIN_TOKEN=x-install-test-token "$bin" check -c deploy.jsonc >check2.txt 2>&1 ||
  fail "steward check on the deploy example: $(cat check2.txt)"

# A short run: the policy requires steward.smooth, found only in the installed share/.
cp "$demo" demo.jsonc
sed -i "s#\"\\.\\./providers/demo.json\"#\"$prefix/share/steward/examples/providers/demo.json\"#; \
        s#\"\\.\\./\\.\\./policies/follow_demand.lua\"#\"$prefix/share/steward/policies/follow_demand.lua\"#" demo.jsonc
log="$WORKDIR/run.log"
"$bin" run -c demo.jsonc --for 20s --speed 20 2>"$log" || fail "installed steward run failed"
grep -q 'summary: [1-9][0-9]* evaluations (0 policy errors)' "$log" || fail "no evaluations"
echo "ok: installed to $prefix; plugins, check and run work without flags"
