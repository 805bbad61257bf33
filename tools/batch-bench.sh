#!/usr/bin/env bash
# Batch scoring speed in one run, on this machine, with the peers beside it:
#  1. hokusai: redis-server, hokusai-api and hokusai-worker as separate
#     processes on loopback; `hokusai batch submit LEADS --wait -o OUT` timed
#     from submit to the last result byte; Redis's peak memory over the run.
#  2. in-process: the same file scored by the worker's chunk code on every
#     core, without queue or HTTP (go test ./worker -bench BatchInProcess).
#  3. Celery: ../shared/peers/celery_batch.py on the same file (CELERY=0 skips;
#     needs python3-celery python3-redis python3-xgboost python3-fastapi).
# The services run as docker-compose runs them: the API and a worker for the
# sync and async lanes with one P each (GOMAXPROCS=1), and a batch-only worker
# (HOKUSAI_LANES=batch, every core), which puts its threads in the idle CPU
# class (SCHED_IDLE) and offers its core between blocks of rows. As compose's cpu_shares: 2 does for its container, the bench
# puts that worker in a CPU cgroup of the lowest weight when it can (root,
# cgroup v1 cpu or v2), since SCHED_IDLE ranks threads only within their group.
# SPLIT=0 runs one worker for all lanes instead.
# SYNC=0 sends no sync predicts, so the batch has the machine to itself (no p99).
# FLOOR=1 runs no batch: one idle-class busy loop a core, in that cgroup, for
# 3.2 s, to show what sync p99 does when the cores are merely busy.
# ROWS (default 1,000,000) synthetic leads are written under /tmp, never in
# the repository. Every process started here is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
CELERY=${CELERY:-1}
PEERS_DIR=$(cd "${PEERS_DIR:-../shared/peers}" && pwd)
repo=$PWD
work=$(mktemp -d /tmp/hokusai-batch-bench.XXXXXX)
pids=()
cgroup=""
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  [ -z "$cgroup" ] || rmdir "$cgroup" 2>/dev/null || true
}
trap stop_all EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { for _ in $(seq 200); do curl -sf "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "batch-bench: $* never answered" >&2; return 1; }
mem() { redis-cli -p "$1" info memory | tr -d '\r' | sed -n "s/^$2://p"; }

go build -o "$work/bin/" ./cmd/hokusai ./cmd/hokusai-api ./cmd/hokusai-worker
leads="/tmp/hokusai-leads-$ROWS.csv"
[ -f "$leads" ] || "$work/bin/hokusai" batch gen-leads "$ROWS" -o "$leads"
echo "leads: $leads, $ROWS rows, $(($(stat -c %s "$leads") / 1000000)) MB"

rport=$(free_port); aport=$(free_port); hport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --loglevel warning &
pids+=($!)
export REDIS_URL="redis://127.0.0.1:$rport/0"
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
printf 'models:\n  - id: "21"\n    name: Sales Lead Scoring Model\n    source: file://%s/models/sales-lead-scoring\n' "$PWD" >"$work/registry.yaml"
"$work/bin/hokusai" models apply -f "$work/registry.yaml" >/dev/null
export HOKUSAI_API_KEY=$("$work/bin/hokusai" keys create --tenant bench --limit unlimited)
export HOKUSAI_API_URL="http://127.0.0.1:$aport"
# low_weight_group: make a new CPU cgroup of the lowest weight ($cgroup), as
# docker-compose's cpu_shares: 2 gives the batch-worker container.
low_weight_group() {
  local g
  if [ -w /sys/fs/cgroup/cpu ] && g=/sys/fs/cgroup/cpu/hokusai-bench-$$ && mkdir "$g" 2>/dev/null; then
    cgroup=$g
    echo 2 >"$g/cpu.shares"
  elif grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null && g=/sys/fs/cgroup/hokusai-bench-$$ && mkdir "$g" 2>/dev/null; then
    cgroup=$g
    echo 1 >"$g/cpu.weight"
  fi
  if [ -n "$cgroup" ]; then echo "batch work in CPU cgroup $cgroup (lowest weight)"; else echo "no CPU cgroup (not root?): batch work runs at its group's weight"; fi
}
# into_group PID: move PID into $cgroup, if there is one.
into_group() { [ -z "$cgroup" ] || echo "$1" >"$cgroup/cgroup.procs"; }
{ [ "${SPLIT:-1}" = 1 ] || [ "${FLOOR:-0}" = 1 ]; } && low_weight_group
if [ "${SPLIT:-1}" = 1 ]; then
  # Sync and async on one worker; batch on another, in the idle CPU class by
  # default, so partners' calls take the cores first.
  GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn HOKUSAI_LANES=sync,async "$work/bin/hokusai-worker" --health-addr "127.0.0.1:$hport" >"$work/worker.log" 2>&1 &
  pids+=($!)
  HOKUSAI_LOG_LEVEL=warn HOKUSAI_LANES=batch "$work/bin/hokusai-worker" --health-addr "127.0.0.1:0" >"$work/batch-worker.log" 2>&1 &
  pids+=($!)
  into_group $!
else
  HOKUSAI_LOG_LEVEL=warn "$work/bin/hokusai-worker" --health-addr "127.0.0.1:$hport" >"$work/worker.log" 2>&1 &
  pids+=($!)
fi
GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn "$work/bin/hokusai-api" --listen "127.0.0.1:$aport" >"$work/api.log" 2>&1 &
pids+=($!)
wait_ok "http://127.0.0.1:$hport/readyz"
wait_ok -H "X-API-Key: $HOKUSAI_API_KEY" "$HOKUSAI_API_URL/api/v1/models/21/health"
sleep 0.5 # the API's view of heartbeats refreshes every 250 ms

# Sync predicts one at a time, one every 2 ms, until $work/stop exists or
# after $1 seconds; prints one line a 200 answer: its start (Unix seconds)
# and its latency in ms.
trickle() {
  /usr/bin/python3 - "$aport" "$HOKUSAI_API_KEY" "$work/stop" "$1" <<'PY'
import http.client, json, os, sys, time
port, key, stop, limit = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
body = json.dumps({"inputs": {"company_size": 250, "engagement_score": 82, "website_visits": 14, "email_opens": 9,
    "content_downloads": 3, "demo_requested": True, "budget_confirmed": True, "industry": "Technology",
    "decision_timeline": "1-3 months", "title": "VP of Sales"}})
c = http.client.HTTPConnection("127.0.0.1", port)
end = time.time() + limit
while time.time() < end and not os.path.exists(stop):
    start, t = time.time(), time.perf_counter()
    c.request("POST", "/api/v1/models/21/predict", body, {"X-API-Key": key, "Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status == 200:
        print(f"{start:.6f} {(time.perf_counter() - t) * 1000:.3f}")
    time.sleep(0.002)
PY
}
# latency FILE [FROM TO]: count, p50 and p99 of the samples that started
# between FROM and TO (Unix seconds), or of all of them.
latency() {
  python3 - "$@" <<'PY'
import sys
lo, hi = (float(sys.argv[2]), float(sys.argv[3])) if len(sys.argv) > 3 else (0, float("inf"))
lat = sorted(float(l.split()[1]) for l in open(sys.argv[1]) if lo <= float(l.split()[0]) <= hi)
if not lat:
    sys.exit("batch-bench: no sync predict succeeded in the window")
print(f"{len(lat)} sync predicts, p50 {lat[len(lat)//2]:.2f} ms, p99 {lat[len(lat)*99//100]:.2f} ms")
PY
}
p99() { sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p' <<<"$1"; }
if [ "${SYNC:-1}" = 1 ] || [ "${FLOOR:-0}" = 1 ]; then
  trickle 5 >"$work/idle.txt"
  idle=$(latency "$work/idle.txt")
  trickle 300 >"$work/busy.txt" &
  tpid=$!
  pids+=($tpid)
fi

if [ "${FLOOR:-0}" = 1 ]; then
  # The floor: no batch, only one busy loop a core in the idle CPU class (in the
  # lowest-weight group), for as long as a batch runs here. What sync p99 does
  # then is what preempting busy cores costs on this machine.
  t0=$(date +%s.%N)
  for _ in $(seq "$(nproc)"); do
    sh -c "{ [ -z '$cgroup' ] || echo \$\$ >'$cgroup/cgroup.procs'; } && exec chrt --idle 0 timeout 3.2 sh -c 'while :; do :; done'" &
    pids+=($!)
  done
  wait "${pids[@]: -$(nproc)}" || true
  t1=$(date +%s.%N)
  touch "$work/stop"
  wait "$tpid"
  busy=$(latency "$work/busy.txt" "$t0" "$t1")
  echo "floor: sync predict while idle: $idle; with $(nproc) idle-class busy loops: $busy; p99 $(python3 -c "print(f'{$(p99 "$busy")/$(p99 "$idle"):.1f}')")x idle"
  exit 0
fi
base=$(mem "$rport" used_memory)
t0=$(date +%s.%N)
"$work/bin/hokusai" batch submit "$leads" --model 21 --wait -o "$work/scored.csv" >/dev/null
t1=$(date +%s.%N)
if [ "${SYNC:-1}" = 1 ]; then
  touch "$work/stop"
  wait "$tpid"
  # Only the predicts sent while the batch ran, from submit to the last result byte.
  busy=$(latency "$work/busy.txt" "$t0" "$t1")
  echo "sync predict while idle: $idle; during the batch: $busy; p99 $(python3 -c "print(f'{$(p99 "$busy")/$(p99 "$idle"):.1f}')")x idle"
fi
peak=$(mem "$rport" used_memory_peak)
e2e=$(python3 -c "print(f'{$t1-$t0:.2f}')")
echo "hokusai: $ROWS rows submit -> results downloaded in ${e2e}s = $(python3 -c "print(f'{$ROWS/($t1-$t0):,.0f}')") rows/s;" \
  "$(($(wc -l <"$work/scored.csv") - 1)) result rows; redis peak $(((peak - base) / 1000000)) MB over a $((base / 1000000)) MB baseline" \
  "= $(python3 -c "print(f'{($peak-$base)/$(stat -c %s "$leads"):.2f}')") x the input"

inproc=$(HOKUSAI_BENCH_FILE="$leads" go test ./worker/ -run '^$' -bench BatchInProcess -benchtime 1x | awk '/rows\/s/{print $(NF-1)}')
echo "in-process: $(python3 -c "print(f'{$inproc:,.0f}')") rows/s; hokusai end to end is $(python3 -c "print(f'{$ROWS/($t1-$t0)/$inproc*100:.0f}')")% of it"

if [ "$CELERY" = 1 ]; then
  cport=$(free_port)
  export BROKER="redis://127.0.0.1:$cport/0" # celery_queue.py's broker
  redis-server --port "$cport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --loglevel warning &
  pids+=($!)
  (cd "$PEERS_DIR" && MODEL="$repo/models/sales-lead-scoring/model.json" exec /usr/bin/python3 -m celery -A celery_batch.capp worker \
    --concurrency=2 -I celery_batch --loglevel=warning >"$work/celery.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$cport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 3 # the Celery worker's start-up
  out=$(cd "$PEERS_DIR" && MODEL="$repo/models/sales-lead-scoring/model.json" timeout 300 /usr/bin/python3 celery_batch.py "$leads" "$work/celery-out.csv")
  echo "celery: $out"
  ctotal=$(echo "$out" | sed -n 's/.*total \([0-9.]*\)s.*/\1/p')
  echo "hokusai is $(python3 -c "print(f'{$ctotal/($t1-$t0):.1f}')")x faster than the Celery peer"
fi
