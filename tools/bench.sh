#!/usr/bin/env bash
# End-to-end speed of the predict path, beside the Python peers, in one run:
# API + worker + Redis as separate processes on loopback, keep-alive clients.
#   c=1 and c=16 sync predict (wrk, DURATION each), idle worker load on Redis
#   (commands/s over IDLE seconds), then the same wrk runs against the peers.
# Needs: redis-server wrk; for the peers python3-fastapi python3-uvicorn
# python3-httptools python3-uvloop python3-celery python3-redis python3-xgboost
# (PEERS=0 skips them). Bounded: every load run stops after DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
IDLE=${IDLE:-10}
PEERS=${PEERS:-1}
PEERS_DIR=${PEERS_DIR:-../shared/peers}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { for _ in $(seq 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "bench: $1 never came up" >&2; return 1; }

make -s build
rport=$(port); aport=$(port); hport=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize no --loglevel warning &
pids+=($!)
export REDIS_URL="redis://127.0.0.1:$rport/0"
sleep 0.3
cat > "$work/registry.yaml" <<YAML
models:
  - id: "21"
    name: Sales Lead Scoring Model
    source: file://$PWD/models/sales-lead-scoring
YAML
bin/hokusai models apply -f "$work/registry.yaml" >/dev/null
KEY=$(bin/hokusai keys create --tenant bench)
# One P each, as docker-compose.yml runs the API and the sync/async worker.
GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn bin/hokusai-worker --health-addr "127.0.0.1:$hport" >"$work/worker.log" 2>&1 &
pids+=($!)
GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn bin/hokusai-api --listen "127.0.0.1:$aport" >"$work/api.log" 2>&1 &
pids+=($!)
waitfor "http://127.0.0.1:$hport/readyz"
waitfor "http://127.0.0.1:$aport/ready"
sleep 0.5 # one heartbeat refresh

body='{"inputs": {"company_size": 1000, "engagement_score": 75, "website_visits": 12, "email_opens": 4, "content_downloads": 2, "demo_requested": true, "budget_confirmed": false, "industry": "Finance", "decision_timeline": "1-3 months", "title": "Director of Sales"}}'
plain=${body%\}}', "options": {"explain": false}}'
for f in post:"$body" plain:"$plain"; do
  cat > "$work/${f%%:*}.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$KEY"
wrk.body = [[${f#*:}]]
LUA
done
curl -sS -f "http://127.0.0.1:$aport/api/v1/models/21/predict" -H "X-API-Key: $KEY" -H "Content-Type: application/json" -d "$body" >"$work/first.json" || { cat "$work/first.json" "$work/api.log" "$work/worker.log"; exit 1; }

# wrk's latency report -> "p50 p99 rps"
summarize() { awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /^Requests\/sec/{rps=$2} /requests in/{n=$1} /Non-2xx/{bad=$NF} END{printf "p50=%s p99=%s rps=%s non2xx=%s requests=%s\n", p50, p99, rps, (bad==""?0:bad), n}'; }
load() { wrk -t"$1" -c"$2" -d"$DURATION" --latency -s "$3" "$4" | summarize; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# CPU per request of each process over one run, in microseconds.
cpu_per_request() {
  local n=$1; shift
  local hz; hz=$(getconf CLK_TCK)
  local out=""
  for name_pid in "$@"; do
    local name=${name_pid%%:*} pid=${name_pid##*:}
    out+="$name=$(( ($(ticks "$pid") - ${start[$pid]}) * 1000000 / hz / n ))us "
  done
  echo "$out"
}
declare -A start
procs=("redis:${pids[0]}" "worker:${pids[1]}" "api:${pids[2]}")
url="http://127.0.0.1:$aport/api/v1/models/21/predict"

echo "== hokusai (API + worker + Redis, separate processes)"
echo "c=1  $(load 1 1 "$work/post.lua" "$url")"
for p in "${pids[@]}"; do start[$p]=$(ticks "$p"); done
r=$(load 2 16 "$work/post.lua" "$url"); echo "c=16 $r"
echo "     cpu per request: $(cpu_per_request "${r##*requests=}" "${procs[@]}")"
echo "c=1  no factors (options.explain=false) $(load 1 1 "$work/plain.lua" "$url")"
echo "c=16 no factors (options.explain=false) $(load 2 16 "$work/plain.lua" "$url")"

sleep 2 # let the last replies settle
c0=$(redis-cli -p "$rport" info stats | awk -F: '/^total_commands_processed/{print $2+0}')
sleep "$IDLE"
c1=$(redis-cli -p "$rport" info stats | awk -F: '/^total_commands_processed/{print $2+0}')
echo "idle: $(( (c1 - c0) / IDLE )) Redis commands/s with one idle worker and one API (heartbeats and snapshot refresh included)"

if [ "$PEERS" = 1 ]; then
  ( cd "$PEERS_DIR" && MODEL="$PWD/../../main/models/sales-lead-scoring/model.json" ./run_peers.sh ) >"$work/peers.pids" 2>&1 || true
  trap 'cleanup; for p in $(awk "{print \$2}" "$work/peers.pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; redis-cli -p 6391 shutdown nosave >/dev/null 2>&1 || true' EXIT
  waitfor_post() { for _ in $(seq 100); do curl -s -o /dev/null -w '%{http_code}' -X POST "$1" -H 'X-API-Key: test-key' -H 'Content-Type: application/json' -d @"$PEERS_DIR/body.json" 2>/dev/null | grep -q 200 && return 0; sleep 0.2; done; return 1; }
  cd "$PEERS_DIR"
  for peer in "fastapi-inproc 8101" "celery-queue 8102"; do
    set -- $peer
    if waitfor_post "http://127.0.0.1:$2/api/v1/models/21/predict"; then
      echo "== peer $1"
      echo "c=1  $(load 1 1 post.lua "http://127.0.0.1:$2/api/v1/models/21/predict")"
      echo "c=16 $(load 2 16 post.lua "http://127.0.0.1:$2/api/v1/models/21/predict")"
    else
      echo "== peer $1 did not start (see $PEERS_DIR/README.md for its packages)"
    fi
  done
fi
