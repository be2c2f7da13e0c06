# Helpers for the suites that run a REAL Prometheus (Debian package `prometheus`) scraping
# one of the fixture exporters (fixtures/exporter.py, fixtures/queue_exporter.py) on
# 127.0.0.1. Source after tests/lib.sh and new_workdir; uses WORKDIR.

# exporter_set JSON: the exporter's state file, replaced whole (it reads it at each scrape).
exporter_set() {
  printf '%s\n' "$1" >"$PROM_EXPORTER_STATE.tmp" && mv "$PROM_EXPORTER_STATE.tmp" "$PROM_EXPORTER_STATE"
}

# prom_start JOB EXPORTER STATE JSON: fixtures/EXPORTER on a free port reading
# $WORKDIR/STATE (first set to JSON), and Prometheus on another, scraping it every second as
# job JOB (log: $WORKDIR/prometheus.log). Sets exporter_port, prom_port and prom_pid; does not
# wait for a first scrape.
prom_start() {
  local job=$1 exporter=$2
  PROM_EXPORTER_STATE=$WORKDIR/$3
  exporter_port=$(free_port)
  prom_port=$(free_port)
  exporter_set "$4"
  python3 "$SW_SOURCE_DIR/tests/integration/fixtures/$exporter" "$exporter_port" "$PROM_EXPORTER_STATE" &
  SW_TEST_PIDS+=($!)
  cat >"$WORKDIR/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: $job
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
YAML
  prometheus --config.file="$WORKDIR/prometheus.yml" --storage.tsdb.path="$WORKDIR/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$WORKDIR/prometheus.log" 2>&1 &
  prom_pid=$!
  SW_TEST_PIDS+=("$prom_pid")
}
