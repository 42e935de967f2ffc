#!/usr/bin/env bash
# Renders the Umbra Prometheus console (monitoring/prometheus/consoles/umbra.html) to a PNG, so the
# dashboard can be looked at without Grafana or a browser session (DESIGN.md §10).
#
# usage: monitoring/render_console.sh TARGETS.json OUT.png [WAIT_SECONDS] [RUN_NAME]
#
#   TARGETS.json  a Prometheus file_sd target file listing running exporters, e.g. the one rank 0
#                 writes to <run.dir>/prometheus_targets/<run.name>.json
#   OUT.png       where the screenshot goes
#   WAIT_SECONDS  how long to scrape (once a second) before rendering; default 30
#   RUN_NAME      show only this run (?run=...); default: every target in the file
#
# It starts its own Prometheus (Debian package `prometheus`) on a free loopback port with a
# temporary TSDB, waits until a target is up, collects WAIT_SECONDS of samples, checks that the
# console page renders (HTTP 200), and screenshots it with headless Chromium (Debian package
# `chromium`). Everything stays on 127.0.0.1 and is removed on exit. Environment overrides:
# PROMETHEUS, CHROMIUM, CONSOLE_LIBRARIES, WINDOW_SIZE (default 1400,3000).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 4 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -ge 1 && ( "$1" == "-h" || "$1" == "--help" ) ]] && exit 0
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
targets="$(realpath "$1")"
out="$(realpath -m "$2")"
wait_s="${3:-30}"
run_name="${4:-}"
prometheus="${PROMETHEUS:-/usr/bin/prometheus}"
libraries="${CONSOLE_LIBRARIES:-/usr/share/doc/prometheus/examples/console_libraries}"
window="${WINDOW_SIZE:-1400,3000}"

die() { echo "render_console: $*" >&2; exit 1; }

[[ -f "$targets" ]] || die "target file '$targets' does not exist"
[[ -x "$prometheus" ]] || die "'$prometheus' not found (apt-get install prometheus)"
[[ -f "$libraries/prom.lib" ]] || die "console libraries not found in '$libraries' (set CONSOLE_LIBRARIES)"
[[ "$wait_s" =~ ^[0-9]+$ ]] || die "WAIT_SECONDS must be a whole number, got '$wait_s'"
chromium="${CHROMIUM:-}"
if [[ -z "$chromium" ]]; then
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null; then chromium="$(command -v "$c")"; break; fi
  done
fi
[[ -n "$chromium" ]] || die "no Chromium found (apt-get install chromium, or set CHROMIUM)"
command -v curl >/dev/null || die "curl not found"
mkdir -p "$(dirname "$out")"

tmp="$(mktemp -d)"
prom_pid=""
cleanup() {
  if [[ -n "$prom_pid" ]]; then
    kill "$prom_pid" 2>/dev/null || true
    wait "$prom_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free loopback port: bind port 0 and read back what the kernel chose.
port="$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"

# Same job as monitoring/prometheus/prometheus.yml, scraping every second from the given file.
cat > "$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: umbra
    honor_labels: true
    file_sd_configs:
      - files: ['$targets']
        refresh_interval: 1s
EOF

"$prometheus" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$port" \
  --web.console.templates="$here/prometheus/consoles" --web.console.libraries="$libraries" \
  >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!

wait_until() {  # wait_until SECONDS COMMAND...: retry COMMAND every 0.5 s
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    kill -0 "$prom_pid" 2>/dev/null || { cat "$tmp/prometheus.log" >&2; die "prometheus exited"; }
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
ready() { curl -sf "$base/-/ready" >/dev/null; }
target_up() {
  curl -sf "$base/api/v1/query" --data-urlencode 'query=up{job="umbra"} == 1' |
    grep -q '"value"'
}
wait_until 30 ready || { tail -20 "$tmp/prometheus.log" >&2; die "prometheus did not become ready"; }
wait_until 30 target_up ||
  die "no target in '$targets' could be scraped (are the exporters running? see $base/targets)"
echo "render_console: scraping $(grep -o '"[^"]*:[0-9]*"' "$targets" | tr -d '"' | tr '\n' ' ')for ${wait_s}s"
sleep "$wait_s"

# Rates over 10 s (ten scrapes) rather than the page's default 1m, so the short history this
# Prometheus has does not show as a ramp.
page="$base/consoles/umbra.html?window=10s${run_name:+&run=$run_name}"
status="$(curl -s -o "$tmp/page.html" -w '%{http_code}' "$page")"
[[ "$status" == "200" ]] || { head -c 2000 "$tmp/page.html" >&2; die "console page returned HTTP $status"; }

# The graphs cover the time this Prometheus has been scraping (plus a little margin).
range=$((wait_s + 15))
url="$page#pctc%7B%22duration%22%3A$range%2C%22endTime%22%3A0%7D"
rm -f "$out"
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/chromium" --hide-scrollbars --window-size="$window" \
  --virtual-time-budget=15000 --screenshot="$out" "$url" >"$tmp/chromium.log" 2>&1 ||
  { tail -20 "$tmp/chromium.log" >&2; die "chromium failed"; }
[[ -s "$out" ]] || { tail -20 "$tmp/chromium.log" >&2; die "chromium wrote no screenshot"; }
echo "render_console: wrote $out"
