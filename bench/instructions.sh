#!/usr/bin/env bash
# Instructions a gateway request costs, counted by callgrind (deterministic
# to within about 1 %, where throughput wanders by 20 % between minutes):
# the server runs under valgrind with an nginx upstream, 300 warm-up
# requests go over one kept-alive connection, the counters are zeroed, and
# 1 000 more are counted, every thread of the process included.
# Usage: bash bench/instructions.sh [ROUTE...]   (public, jwt, cedar; env BENCH_BIN)
source "$(dirname "$0")/common.sh"
need nginx
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends valgrind >/dev/null; }
build
routes=("$@")
((${#routes[@]})) || routes=(public jwt cedar)

count() { # route -> instructions per request
  local route=$1 W
  W=$(mktemp -d)
  cat >"$W/nginx.conf" <<NGINX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18081; location / { return 200 "ok\n"; } } }
NGINX
  nginx -p "$W" -c nginx.conf
  write_bench_config "$W" "password_memory_kib = 64
password_iterations = 1"
  (cd "$W" && GATEHOUSE_LOG=warn exec valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" \
    "$BIN" serve --config "$W/gatehouse.toml" >"$W/out.log" 2>&1) &
  local vpid=$!
  for _ in $(seq 1 600); do curl -sf http://127.0.0.1:18080/health/ready >/dev/null && break; sleep 0.5; done
  local token
  token=$(curl -s -d grant_type=password -d client_id=bench-cli -d username=u1 -d password=pw -d scope=orders:read \
    http://127.0.0.1:18080/realms/bench/protocol/openid-connect/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  python3 - "$token" "$route" "$vpid" <<'PY'
import http.client, subprocess, sys
token, route, pid = sys.argv[1:4]
c = http.client.HTTPConnection("127.0.0.1", 18000)
headers = {"Authorization": "Bearer " + token}
def run(n):
    for _ in range(n):
        c.request("GET", "/" + route, headers=headers)
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
run(300)
subprocess.run(["callgrind_control", "--zero", pid], capture_output=True, check=True)
run(1000)
subprocess.run(["callgrind_control", "--dump", pid], capture_output=True, check=True)
PY
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  nginx -p "$W" -c nginx.conf -s stop
  local total=0 n
  for f in "$W"/cg.out*; do
    n=$(awk '/^totals:/ {print $2; exit}' "$f")
    total=$((total + ${n:-0}))
  done
  rm -rf "$W"
  echo $((total / 1000))
}

for r in "${routes[@]}"; do
  echo "$r: $(count "$r") instructions per request"
done
