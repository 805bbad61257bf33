#!/usr/bin/env bash
# A/B speed of the sync predict path: two builds of this repository (BASE, a
# git revision, against the working tree) run side by side as separate
# processes (redis-server, hokusai-api, hokusai-worker each, one P, as
# docker-compose.yml runs them) and are loaded in turn with wrk, ABBA order
# over ROUNDS rounds so drift hits both alike. Prints every run, the median
# ratio of throughput (working tree / BASE), each build's CPU per request
# (its API, worker and Redis together), which drifts less than throughput on
# a shared machine, and its Redis commands per request (heartbeats included),
# which hardly drifts at all.
#   tools/ab-bench.sh BASE         e.g. tools/ab-bench.sh main~3
#   ROUNDS=4 SECS=5 CONNS=16 BODY=file.json
#   ROUTE=jobs           async submits (202) instead of sync predicts; the
#                        worker's CPU for them is counted as it keeps up
#   LIMIT=1000000000/h   the bench key's rate limit, where the build has
#                        them (default unlimited: no rate-limit script runs;
#                        a huge limit measures what counting costs)
#   BASE_LIMIT=unlimited the base's key's limit, when not LIMIT: with BASE
#                        HEAD, what rate limiting costs one build
# Needs redis-server, wrk, git. Bounded: 2 x ROUNDS x SECS of load. Stops
# everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: tools/ab-bench.sh BASE-REVISION}
ROUNDS=${ROUNDS:-4}
SECS=${SECS:-5}
CONNS=${CONNS:-16}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$work/base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { for _ in $(seq 150); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "ab-bench: $1 never came up" >&2; return 1; }
build() { (cd "$1" && CGO_ENABLED=0 go build -trimpath -o "$2/" ./cmd/hokusai-api ./cmd/hokusai-worker ./cmd/hokusai); }

git worktree add --detach -q "$work/base" "$BASE"
build "$work/base" "$work/a"
build "$PWD" "$work/b"

# start NAME SRC BIN: a whole stack of one build, its URL in url_NAME.
start() {
  local name=$1 src=$2 bin=$3 r a h
  r=$(port); a=$(port); h=$(port)
  redis-server --port "$r" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --loglevel warning >/dev/null 2>&1 &
  pids+=($!)
  eval "procs_$name=$!"
  eval "rport_$name=$r"
  sleep 0.3
  printf 'models:\n  - id: "21"\n    name: Sales Lead Scoring Model\n    source: file://%s/models/sales-lead-scoring\n' "$src" >"$work/$name.yaml"
  REDIS_URL="redis://127.0.0.1:$r/0" "$bin/hokusai" models apply -f "$work/$name.yaml" >/dev/null
  local key
  # LIMIT where the build has rate limits; older builds have none.
  local limit=${LIMIT:-unlimited}
  if [ "$name" = a ]; then limit=${BASE_LIMIT:-$limit}; fi
  key=$(REDIS_URL="redis://127.0.0.1:$r/0" "$bin/hokusai" keys create --tenant ab --limit "$limit" 2>/dev/null ||
    REDIS_URL="redis://127.0.0.1:$r/0" "$bin/hokusai" keys create --tenant ab)
  REDIS_URL="redis://127.0.0.1:$r/0" GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn "$bin/hokusai-worker" --health-addr "127.0.0.1:$h" >"$work/$name.worker.log" 2>&1 &
  pids+=($!)
  eval "procs_$name=\"\$procs_$name $!\""
  REDIS_URL="redis://127.0.0.1:$r/0" GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn "$bin/hokusai-api" --listen "127.0.0.1:$a" >"$work/$name.api.log" 2>&1 &
  pids+=($!)
  eval "procs_$name=\"\$procs_$name $!\""
  waitfor "http://127.0.0.1:$h/readyz"
  waitfor "http://127.0.0.1:$a/ready"
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-API-Key"] = "%s"\nwrk.body = [[%s]]\n' \
    "$key" "$(cat "$body")" >"$work/$name.lua"
  eval "url_$name=http://127.0.0.1:$a/api/v1/models/21/${ROUTE:-predict}"
}

body="$work/body.json"
if [ -n "${BODY:-}" ]; then cp "$BODY" "$body"; else
  echo '{"inputs": {"company_size": 1000, "engagement_score": 75, "website_visits": 12, "email_opens": 4, "content_downloads": 2, "demo_requested": true, "budget_confirmed": false, "industry": "Finance", "decision_timeline": "1-3 months", "title": "Director of Sales"}}' >"$body"
fi
start a "$work/base" "$work/a"
start b "$PWD" "$work/b"
sleep 1 # a heartbeat refresh
for n in a b; do
  u=url_$n
  code=$(curl -s -o "$work/$n.first" -w '%{http_code}' -XPOST "${!u}" -H "Content-Type: application/json" \
    -H "X-API-Key: $(sed -n 's/.*X-API-Key"\] = "\(.*\)"/\1/p' "$work/$n.lua")" -d @"$body")
  [ "$code" = "$([ "${ROUTE:-predict}" = jobs ] && echo 202 || echo 200)" ] || { echo "ab-bench: $n answered $code: $(head -c 300 "$work/$n.first")" >&2; exit 1; }
done

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
commands() { redis-cli -p "$1" info stats | awk -F: '/^total_commands_processed/ {print $2 + 0}'; }
run() { # run NAME ROUND: wrk's report, then the stack's CPU ticks and Redis commands over the run
  local u=url_$1 procs=procs_$1 rport=rport_$1 t0 c0
  t0=$(ticks ${!procs})
  c0=$(commands "${!rport}")
  wrk -t"$((CONNS < 2 ? CONNS : 2))" -c"$CONNS" -d"${SECS}s" --latency -s "$work/$1.lua" "${!u}" >"$work/$1.$2"
  echo "ticks $(( $(ticks ${!procs}) - t0 )) $(getconf CLK_TCK)" >>"$work/$1.$2"
  echo "commands $(( $(commands "${!rport}") - c0 ))" >>"$work/$1.$2"
}
for i in $(seq "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then run a "$i"; run b "$i"; else run b "$i"; run a "$i"; fi
done
python3 - "$work" "$ROUNDS" "$BASE" <<'PY'
import re, statistics, sys
w, rounds, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def parse(p):
    t = open(p).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    def pct(q):
        m = re.search(r"^\s*" + q + r"%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    p50, p99 = pct("50"), pct("99")
    n = int(re.search(r"(\d+) requests in", t).group(1))
    ticks, hz = map(int, re.search(r"^ticks (\d+) (\d+)$", t, re.M).groups())
    cmds = int(re.search(r"^commands (\d+)$", t, re.M).group(1))
    return rps, p99, bool(re.search(r"Non-2xx|Socket errors", t)), ticks / hz / n * 1e6, p50, cmds / n
a = [parse(f"{w}/a.{i}") for i in range(1, rounds + 1)]
b = [parse(f"{w}/b.{i}") for i in range(1, rounds + 1)]
for i, (x, y) in enumerate(zip(a, b), 1):
    print(f"round {i}: base {x[0]:7.0f} req/s p99 {x[1]:5.1f} ms {x[3]:4.0f} us CPU/req   "
          f"tree {y[0]:7.0f} req/s p99 {y[1]:5.1f} ms {y[3]:4.0f} us CPU/req   ratio {y[0]/x[0]:.3f}")
r = [y[0] / x[0] for x, y in zip(a, b)]
print(f"median ratio tree/{base}: {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}, {rounds} ABBA rounds)"
      + ("  ERRORS in some run" if any(x[2] for x in a + b) else ""))
print(f"median CPU per request (API + worker + Redis): base {statistics.median(x[3] for x in a):.0f} us, "
      f"tree {statistics.median(y[3] for y in b):.0f} us")
print(f"median p50: base {statistics.median(x[4] for x in a):.2f} ms, tree {statistics.median(y[4] for y in b):.2f} ms")
print(f"median Redis commands per request: base {statistics.median(x[5] for x in a):.2f}, tree {statistics.median(y[5] for y in b):.2f}")
PY
