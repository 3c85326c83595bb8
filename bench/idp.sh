#!/usr/bin/env bash
# Identity provider benchmark: client-credentials, refresh-token and
# password grants per second on loopback (wrk), each as a ratio to the raw
# crypto rate measured in the same run (`gatehouse bench-crypto`: RS256
# signatures/s, argon2id hashes/s at the default cost = Keycloak's), plus
# time from start to ready and idle RSS.
# Usage: bash bench/idp.sh  (env: DURATION=8 ROUNDS=3)
source "$(dirname "$0")/common.sh"
need wrk
build
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat >"$WORK/realm.json" <<'JSON'
{"realm": "bench", "enabled": true,
 "clients": [{"clientId": "cc", "secret": "cc-secret", "serviceAccountsEnabled": true, "directAccessGrantsEnabled": true}],
 "users": [{"username": "u1", "enabled": true, "credentials": [{"type": "password", "value": "pw"}]}]}
JSON
cat >"$WORK/gatehouse.toml" <<TOML
[server]
identity_listen = "127.0.0.1:18090"
gateway_listen = "127.0.0.1:18091"
data_dir = "$WORK/data"
import_realms = ["realm.json"]
TOML

# Start-to-ready and idle RSS, on a first start (creates the database) and a restart.
measure_start() {
  python3 - "$BIN" "$WORK/gatehouse.toml" <<'PY'
import subprocess, sys, time, urllib.request, os
t0 = time.perf_counter()
p = subprocess.Popen([sys.argv[1], "serve", "--config", sys.argv[2]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     env={**os.environ, "GATEHOUSE_LOG": "warn", "GATEHOUSE_ADMIN_PASSWORD": "bench-admin"})
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:18090/health/ready", timeout=1)
        break
    except Exception:
        time.sleep(0.002)
ready_ms = (time.perf_counter() - t0) * 1000
time.sleep(1)
rss = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")][0].split()[1]
print(f"{ready_ms:.0f} {int(rss)/1024:.1f}")
p.terminate(); p.wait()
PY
}
read -r first_ms first_rss <<<"$(measure_start)"
read -r again_ms again_rss <<<"$(measure_start)"

GATEHOUSE_LOG=warn "$BIN" serve --config "$WORK/gatehouse.toml" >"$WORK/out" 2>&1 &
wait_http http://127.0.0.1:18090/health/ready
TOKEN_URL=http://127.0.0.1:18090/realms/bench/protocol/openid-connect/token
RT=$(curl -s -d grant_type=password -d client_id=cc -d client_secret=cc-secret -d username=u1 -d password=pw "$TOKEN_URL" \
  | sed 's/.*"refresh_token":"\([^"]*\)".*/\1/')
lua() { # body -> script file
  local f="$WORK/$RANDOM.lua"
  printf 'wrk.method = "POST"\nwrk.body = "%s"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' "$1" >"$f"
  echo "$f"
}
CC=$(lua "grant_type=client_credentials&client_id=cc&client_secret=cc-secret")
RF=$(lua "grant_type=refresh_token&client_id=cc&client_secret=cc-secret&refresh_token=$RT")
PW=$(lua "grant_type=password&client_id=cc&client_secret=cc-secret&username=u1&password=pw")
for s in "$CC" "$RF" "$PW"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data "$(sed -n 's/^wrk.body = "\(.*\)"$/\1/p' "$s")" "$TOKEN_URL")
  [[ $code == 200 ]] || { echo "grant in $s answered $code" >&2; exit 1; }
done
# The raw baseline is measured right before and right after each load
# row (the rows share the measurement between them), and each row's ratio
# is its rate over the mean of the two: this host's speed drifts by a
# third within a minute, so a baseline from the start of the run would
# compare different machines. Each figure is the median of ROUNDS rounds.
crypto() { "$BIN" bench-crypto --seconds 1 --config "$WORK/gatehouse.toml"; }
rsa_of() { awk '$1=="sign_RS256" {print $2}' <<<"$1"; }
argon_of() { awk '$1 ~ /^argon2id/ {print $2}' <<<"$1"; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v r="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.3f", r / ((a + b) / 2) }'; }
declare -A rate ratios raws p50s p99s
before=$(crypto)
for round in $(seq 1 "${ROUNDS:-3}"); do
  for row in cc rf pw; do
    case $row in
      cc) script=$CC; conns=16; of=rsa_of ;;
      rf) script=$RF; conns=16; of=rsa_of ;;
      pw) script=$PW; conns=8; of=argon_of ;;
    esac
    read -r r p50 p99 <<<"$(CONNS=$conns wrk_run "$TOKEN_URL" -s "$script")"
    after=$(crypto)
    rate[$row]+="$r "
    ratios[$row]+="$(ratio "$r" "$($of "$before")" "$($of "$after")") "
    raws[$row]+="$(awk -v a="$($of "$before")" -v b="$($of "$after")" 'BEGIN { print (a + b) / 2 }') "
    p50s[$row]+="$p50 "; p99s[$row]+="$p99 "
    before=$after
  done
done
kill %1 2>/dev/null || true
wait 2>/dev/null || true
cores=$(nproc)
m() { median <<<"${1% }"; }

echo "| measure | Gatehouse | raw crypto baseline | ratio | Keycloak (published, per vCPU) |"
echo "|---|---:|---:|---:|---:|"
awk -v r="$(m "${rate[cc]}")" -v b="$(m "${raws[cc]}")" -v q="$(m "${ratios[cc]}")" -v c="$cores" 'BEGIN { printf "| client-credentials grants/s | %.0f (%.0f per core) | %.0f RS256 signs/s | %.2f | 120 |\n", r, r/c, b, q }'
awk -v r="$(m "${rate[rf]}")" -v b="$(m "${raws[rf]}")" -v q="$(m "${ratios[rf]}")" -v c="$cores" 'BEGIN { printf "| refresh-token grants/s | %.0f (%.0f per core) | %.0f RS256 signs/s | %.2f | 120 |\n", r, r/c, b, q }'
awk -v r="$(m "${rate[pw]}")" -v b="$(m "${raws[pw]}")" -v q="$(m "${ratios[pw]}")" -v c="$cores" 'BEGIN { printf "| password grants/s (argon2id 5 it, 7 MiB) | %.1f (%.1f per core) | %.1f hashes/s | %.2f | 15 |\n", r, r/c, b, q }'
echo "| start to ready, first start / restart | ${first_ms} ms / ${again_ms} ms | | | 10 000 to 26 000 ms |"
echo "| RSS after start, first start / restart | ${first_rss} MB / ${again_rss} MB | | | about 1250 MB |"
echo
echo "per-round ratios: client credentials ${ratios[cc]}; refresh ${ratios[rf]}; password ${ratios[pw]}"
echo "p50/p99 ms (medians): client credentials $(m "${p50s[cc]}")/$(m "${p99s[cc]}"), refresh $(m "${p50s[rf]}")/$(m "${p99s[rf]}"), password $(m "${p50s[pw]}")/$(m "${p99s[pw]}")."
echo "wrk: 1 thread, 16 connections (8 for password), ${DURATION:-8}s per row, ${ROUNDS:-3} rounds, medians; baseline:"
echo "gatehouse bench-crypto (1 s per algorithm, all $cores cores) right before and after each row; $cores cores shared by wrk and gatehouse."
echo "Keycloak figures: keycloak.org, 'Concepts for sizing CPU and memory resources'."
