#!/usr/bin/env bash
# Horizontal scale of the sync predict path: one redis-server and one
# hokusai-api (one P each, as docker-compose.yml runs them) with 1, 2 and 4
# hokusai-worker processes of one P each, loaded with wrk (keep-alive, C
# connections) in interleaved rounds (1, 2, 4, 4, 2, 1, ...), medians.
# Prints, per worker count, throughput, its ratio to one worker's, p99, and
# CPU per predict by process (API, workers together, Redis): on a machine
# with fewer cores than processes the ratio is bounded by the cores, and CPU
# per predict says what each added worker costs and so what a core buys.
#   WORKERS="1 2 4" C=64 ROUNDS=3 SECS=5 BODY=file.json tools/scale-bench.sh
# Needs redis-server, wrk, python3. Bounded: ROUNDS x |WORKERS| x SECS of
# load. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-1 2 4}
C=${C:-64}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { for _ in $(seq 150); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "scale-bench: $1 never came up" >&2; return 1; }
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }

make -s build
r=$(port); a=$(port)
redis-server --port "$r" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --loglevel warning >/dev/null 2>&1 &
redis=$!; pids+=($redis)
export REDIS_URL="redis://127.0.0.1:$r/0"
sleep 0.3
printf 'models:\n  - id: "21"\n    name: Sales Lead Scoring Model\n    source: file://%s/models/sales-lead-scoring\n' "$PWD" >"$work/registry.yaml"
bin/hokusai models apply -f "$work/registry.yaml" >/dev/null
key=$(bin/hokusai keys create --tenant scale --limit unlimited)
GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn bin/hokusai-api --listen "127.0.0.1:$a" >"$work/api.log" 2>&1 &
api=$!; pids+=($api)
body=${BODY:-}
if [ -z "$body" ]; then
  body="$work/body.json"
  echo '{"inputs": {"company_size": 1000, "engagement_score": 75, "website_visits": 12, "email_opens": 4, "content_downloads": 2, "demo_requested": true, "budget_confirmed": false, "industry": "Finance", "decision_timeline": "1-3 months", "title": "Director of Sales"}}' >"$body"
fi
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-API-Key"] = "%s"\nwrk.body = [[%s]]\n' "$key" "$(cat "$body")" >"$work/load.lua"

max=0; for n in $WORKERS; do [ "$n" -gt "$max" ] && max=$n; done
workers=()
for i in $(seq "$max"); do
  h=$(port)
  GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn bin/hokusai-worker --health-addr "127.0.0.1:$h" >"$work/worker.$i.log" 2>&1 &
  workers+=($!); pids+=($!)
  waitfor "http://127.0.0.1:$h/readyz"
  kill -STOP "${workers[-1]}" # woken when its count is measured
done
waitfor "http://127.0.0.1:$a/ready"

# run N ROUND: N workers take work (the rest stopped), wrk, CPU by process.
run() {
  local n=$1 i=$2 j out=$work/run.$1.$2
  for j in "${!workers[@]}"; do
    if [ "$j" -lt "$n" ]; then kill -CONT "${workers[$j]}"; else kill -STOP "${workers[$j]}"; fi
  done
  sleep 2 # a stopped worker's heartbeat lapses; the API's view refreshes
  local t0a t0w t0r
  t0a=$(ticks "$api"); t0w=$(ticks "${workers[@]:0:$n}"); t0r=$(ticks "$redis")
  wrk -t2 -c"$C" -d"${SECS}s" --latency -s "$work/load.lua" "http://127.0.0.1:$a/api/v1/models/21/predict" >"$out"
  echo "ticks $(( $(ticks "$api") - t0a )) $(( $(ticks "${workers[@]:0:$n}") - t0w )) $(( $(ticks "$redis") - t0r )) $(getconf CLK_TCK)" >>"$out"
}
order=($WORKERS)
for i in $(seq "$ROUNDS"); do
  for n in "${order[@]}"; do run "$n" "$i"; done
  order=($(printf '%s\n' "${order[@]}" | tac))
done
for w in "${workers[@]}"; do kill -CONT "$w" 2>/dev/null || true; done
python3 - "$work" "$ROUNDS" $WORKERS <<'PY'
import re, statistics, sys
w, rounds, counts = sys.argv[1], int(sys.argv[2]), [int(n) for n in sys.argv[3:]]
def parse(p):
    t = open(p).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    n = int(re.search(r"(\d+) requests in", t).group(1))
    a, wk, r, hz = map(int, re.search(r"^ticks (\d+) (\d+) (\d+) (\d+)$", t, re.M).groups())
    per = lambda x: x / hz / n * 1e6
    return rps, p99, per(a), per(wk), per(r), bool(re.search(r"Non-2xx|Socket errors", t))
res = {c: [parse(f"{w}/run.{c}.{i}") for i in range(1, rounds + 1)] for c in counts}
one = statistics.median(x[0] for x in res[counts[0]])
print(f"{'workers':>7} {'req/s':>8} {'x one':>6} {'p99 ms':>7}  CPU us/predict: {'api':>5} {'workers':>7} {'redis':>5} {'total':>6}")
for c in counts:
    xs = res[c]
    med = lambda k: statistics.median(x[k] for x in xs)
    print(f"{c:>7} {med(0):>8.0f} {med(0)/one:>6.2f} {med(1):>7.1f}  {'':15}{med(2):>5.0f} {med(3):>7.0f} {med(4):>5.0f} {med(2)+med(3)+med(4):>6.0f}"
          + ("  ERRORS" if any(x[5] for x in xs) else ""))
PY
