# Shared helpers for the benchmarks: install the load generator and nginx
# when missing, build the release binary, wait for ports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# BENCH_BIN runs a binary built elsewhere (say, an older commit's, to
# compare two builds on one machine) and skips the build.
BIN="${BENCH_BIN:-$ROOT/target/release/gatehouse}"
build() { [[ -n ${BENCH_BIN:-} ]] || (cd "$ROOT" && cargo build --release --quiet); }

need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk nginx-light >/dev/null
  fi
}

wait_http() { # url
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.05
  done
  echo "timeout waiting for $1" >&2
  return 1
}

# wrk_run URL [extra wrk args...] -> "rps p50_ms p99_ms"
wrk_run() {
  local url=$1; shift
  local out
  out=$(wrk -t1 -c"${CONNS:-32}" -d"${DURATION:-8}s" --latency "$@" "$url")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from $url" >&2; grep Non-2xx <<<"$out" >&2; fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

to_ms() { # wrk latency like 512.00us / 1.20ms / 2.00s -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}

# The gateway benchmarks' realm and config in DIR (realm.json and
# gatehouse.toml: a bench realm with user u1 in group sales, and the routes
# public, jwt, rules and cedar to an upstream on 18081), with EXTRA lines
# for its [server] section and WORKERS gateway workers (default 1).
write_bench_config() { # DIR [EXTRA]
  cat >"$1/realm.json" <<'JSON'
{"realm": "bench", "enabled": true, "accessTokenLifespan": 3600,
 "clientScopes": [{"name": "orders:read", "protocol": "openid-connect"}],
 "clients": [{"clientId": "bench-cli", "publicClient": true, "directAccessGrantsEnabled": true,
   "optionalClientScopes": ["orders:read"],
   "protocolMappers": [{"name": "aud", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
     "config": {"included.custom.audience": "orders-api"}}]}],
 "groups": [{"name": "sales"}],
 "users": [{"username": "u1", "enabled": true, "credentials": [{"type": "password", "value": "pw"}], "groups": ["/sales"]}]}
JSON
  cat >"$1/gatehouse.toml" <<TOML
[server]
worker_threads = ${WORKERS:-1}
identity_listen = "127.0.0.1:18080"
gateway_listen = "127.0.0.1:18000"
data_dir = "$1/data"
import_realms = ["realm.json"]
${2:-}

[gateway]
audit_log = "$1/audit.log"

[authorizers.bench]
type = "jwt"
issuer = "http://127.0.0.1:18080/realms/bench"
audiences = ["orders-api"]
algorithms = ["RS256"]

[[routes]]
name = "public"
path = "/public"
upstream = "http://127.0.0.1:18081"
public = true

[[routes]]
name = "jwt"
path = "/jwt"
upstream = "http://127.0.0.1:18081"
authorizers = ["bench"]

[[routes]]
name = "rules"
path = "/rules"
upstream = "http://127.0.0.1:18081"
authorizers = ["bench"]
scopes_any = ["orders:read"]
groups_any = ["sales"]
claims = { azp = ["bench-cli"] }

[[routes]]
name = "cedar"
path = "/cedar"
upstream = "http://127.0.0.1:18081"
authorizers = ["bench"]
cedar = """
permit(principal in Group::"sales", action == Action::"GET", resource == Route::"cedar")
  when { principal.scopes.contains("orders:read") };
forbid(principal, action, resource) when { context.ip.isInRange(ip("10.0.0.0/8")) };
"""
TOML
}
