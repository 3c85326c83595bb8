#!/usr/bin/env bash
# Gateway benchmark: wrk on loopback against, alternating in one run,
#   upstream direct | nginx plain reverse proxy | Gatehouse public route |
#   Gatehouse JWT route (RS256) | Gatehouse JWT + rules route | JWT + Cedar route
# and prints requests/s, p50, p99 (32 connections) as a ratio to the nginx row,
# and the p50 of one connection (no queueing) minus the upstream-direct one.
# Usage: bash bench/gateway.sh  (env: DURATION=8 CONNS=32 ROUNDS=2, and
# WORKERS=2 for two workers in both the nginx proxy and Gatehouse)
source "$(dirname "$0")/common.sh"
need wrk nginx
build
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; for d in up px; do nginx -p "$WORK/$d" -c nginx.conf -s stop 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

# The upstream and the nginx proxy are separate nginx instances with one
# worker each, so every proxied row pays the same process hop to the
# upstream; Gatehouse runs with one runtime worker to match (WORKERS
# workers each for the proxy and Gatehouse).
mkdir -p "$WORK/up" "$WORK/px"
cat >"$WORK/up/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18081; location / { return 200 "ok\n"; } } }
NGINX
cat >"$WORK/px/nginx.conf" <<NGINX
worker_processes ${WORKERS:-1};
pid $WORK/px/nginx.pid;
error_log $WORK/px/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:18081; keepalive 64; }
  server {
    listen 127.0.0.1:18082;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
nginx -p "$WORK/up" -c nginx.conf
nginx -p "$WORK/px" -c nginx.conf

write_bench_config "$WORK"
GATEHOUSE_LOG=warn "$BIN" serve --config "$WORK/gatehouse.toml" >"$WORK/gatehouse.out" 2>&1 &
wait_http http://127.0.0.1:18080/health/ready
TOKEN=$(curl -s -d grant_type=password -d client_id=bench-cli -d username=u1 -d password=pw -d scope=orders:read \
  http://127.0.0.1:18080/realms/bench/protocol/openid-connect/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
AUTH=(-H "Authorization: Bearer $TOKEN")
for u in http://127.0.0.1:18000/public http://127.0.0.1:18000/jwt http://127.0.0.1:18000/rules http://127.0.0.1:18000/cedar; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" "$u"); [[ $code == 200 ]] || { echo "$u answered $code" >&2; exit 1; }
done

declare -A RPS P50 P99 LAT
read -r -a rows <<<"${ROWS:-direct nginx nginx_token public jwt rules cedar}"
run_row() { # row conns -> "rps p50 p99"
  local c=$2
  case $1 in
    direct) CONNS=$c wrk_run http://127.0.0.1:18081/ ;;
    nginx)  CONNS=$c wrk_run http://127.0.0.1:18082/ ;;
    # The same request as the token rows (a 1 KB bearer token), which the
    # plain proxy reads and forwards as it is.
    nginx_token) CONNS=$c wrk_run http://127.0.0.1:18082/ "${AUTH[@]}" ;;
    public) CONNS=$c wrk_run http://127.0.0.1:18000/public ;;
    jwt)    CONNS=$c wrk_run http://127.0.0.1:18000/jwt "${AUTH[@]}" ;;
    rules)  CONNS=$c wrk_run http://127.0.0.1:18000/rules "${AUTH[@]}" ;;
    cedar)  CONNS=$c wrk_run http://127.0.0.1:18000/cedar "${AUTH[@]}" ;;
  esac
}
for round in $(seq 1 "${ROUNDS:-2}"); do
  for row in "${rows[@]}"; do
    # Throughput under load (queueing dominates p50 here) ...
    read -r rps p50 p99 <<<"$(run_row "$row" "${CONNS:-32}")"
    # keep the best round of each row (alternation evens out drift)
    if [[ -z ${RPS[$row]:-} ]] || awk -v a="$rps" -v b="${RPS[$row]}" 'BEGIN{exit !(a>b)}'; then
      RPS[$row]=$rps; P50[$row]=$p50; P99[$row]=$p99
    fi
    # ... and the latency one request adds: one connection, no queue.
    read -r _ lat _ <<<"$(DURATION=${LAT_DURATION:-4} run_row "$row" 1)"
    if [[ -z ${LAT[$row]:-} ]] || awk -v a="$lat" -v b="${LAT[$row]}" 'BEGIN{exit !(a<b)}'; then
      LAT[$row]=$lat
    fi
  done
done

echo "| target | requests/s | p50 ms | p99 ms | rps / nginx | rps / nginx, same request | p50 at 1 connection (µs) | added p50 vs direct (µs) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for row in "${rows[@]}"; do
  case $row in jwt | rules | cedar | nginx_token) same=${RPS[nginx_token]:-0} ;; *) same=${RPS[nginx]:-0} ;; esac
  awk -v n="$row" -v r="${RPS[$row]}" -v a="${P50[$row]}" -v b="${P99[$row]}" -v ng="${RPS[nginx]:-0}" \
    -v sm="$same" -v l="${LAT[$row]}" -v d="${LAT[direct]:-0}" \
    'BEGIN { printf "| %s | %.0f | %.3f | %.3f | %.2f | %.2f | %.0f | %.0f |\n", n, r, a, b, (ng > 0 ? r/ng : 0), (sm > 0 ? r/sm : 0), l*1000, (l-d)*1000 }'
done
echo
echo "wrk: 1 thread, ${CONNS:-32} connections, ${DURATION:-8}s per row, best of ${ROUNDS:-2} alternating rounds;"
echo "latency columns: 1 connection, ${LAT_DURATION:-4}s per row, best p50 of the rounds."
echo "$(nproc) cores shared by wrk, the upstream (nginx, 1 worker), the nginx proxy (${WORKERS:-1} worker(s)) and gatehouse (${WORKERS:-1} worker(s), audit log on)."
