#!/usr/bin/env bash
# End-to-end speed of the sync predict path beside the Python peers, in one run
# on loopback, wrk keep-alive clients. It starts:
#   prod    redis-server, hokusai-api and hokusai-worker as separate processes,
#           the API and the worker with one P each (GOMAXPROCS=1), as
#           docker-compose.yml runs them;
#   dev     `hokusai dev`, the one-process stack `make run` starts (Go's default Ps);
#   peers   from PEERS_DIR (../shared/peers beside the repository): fastapi-inproc
#           (FastAPI + xgboost in the request) and celery-queue (FastAPI + a Celery
#           worker on their own redis-server), as its run_peers.sh starts them, but
#           on free ports and each in its own process group.
# At each of CONNS it runs ROUNDS rounds of SECS-second runs: prod and dev with
# factors (the default) and without ("options": {"explain": false}), and the two
# peers (no factors; their own body.json and post.lua), interleaved ours/peer and
# in reverse order every other round so drift hits both alike. It prints every run,
# then per configuration the median req/s, p50 and p99, and the median of the
# per-round ratios ours / fastapi-inproc; the CPU per request of every
# configuration at c=16 and c=64, by process (prod's API, worker and Redis;
# dev with its Redis; the peers' uvicorn, Celery worker and Redis: utime+stime
# of each process group from /proc over the run / requests; wrk's own not counted);
# and the commands/s an idle prod API and worker cost Redis over IDLE seconds.
#   ROUNDS=3 SECS=5 CONNS="1 16 64" IDLE=10 PEERS=1 PEERS_DIR=DIR PYTHON=/usr/bin/python3
# A peer that cannot run fails the bench (exit 1, its log's tail), unless PEERS=0.
# Needs redis-server redis-cli wrk curl python3; for the peers python3-fastapi
# python3-uvicorn python3-httptools python3-uvloop python3-celery python3-redis
# python3-xgboost (tools/ensure-deps.sh bench installs them on Debian).
# Bounded: ROUNDS x CONNS x 6 runs x SECS of load (4 runs with PEERS=0), plus IDLE,
# plus at most a minute of start-up; the estimate is printed first (defaults: about
# 5.5 minutes). Stops every process group it started, peers' children included, on
# exit, error and Ctrl-C.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$(pwd -P)
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CONNS=${CONNS:-1 16 64}
IDLE=${IDLE:-10}
PEERS=${PEERS:-1}
PYTHON=${PYTHON:-/usr/bin/python3}
PEERS_DIR=${PEERS_DIR:-$root/../shared/peers}
case $PEERS_DIR in /*) ;; *) PEERS_DIR=$caller/$PEERS_DIR ;; esac
model_dir=$root/models/sales-lead-scoring
model=$model_dir/model.json
started=$(date +%s)

die() { echo "bench: FAIL: $*" >&2; exit 1; }
for v in ROUNDS SECS IDLE; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v} is not a positive whole number"; done
for c in $CONNS; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONNS=\"$CONNS\": $c is not a connection count"; done
[ "$PEERS" = 0 ] || [ "$PEERS" = 1 ] || die "PEERS=$PEERS: use PEERS=1 (the default) or PEERS=0 to skip the peers"
for t in redis-server redis-cli wrk curl python3; do
  command -v "$t" >/dev/null 2>&1 || die "$t is not installed (tools/ensure-deps.sh bench installs what the bench needs on Debian)"
done
[ -f "$model" ] || die "no model at $model"
if [ "$PEERS" = 1 ]; then
  [ -d "$PEERS_DIR" ] || die "PEERS_DIR=$PEERS_DIR is not a directory: the Python peers live in ../shared/peers beside the repository; set PEERS_DIR to them, or PEERS=0 to bench without them"
  PEERS_DIR=$(cd "$PEERS_DIR" && pwd -P)
  for f in fastapi_inproc.py celery_queue.py body.json post.lua; do
    [ -f "$PEERS_DIR/$f" ] || die "PEERS_DIR=$PEERS_DIR has no $f; set PEERS_DIR to the peers, or PEERS=0 to bench without them"
  done
  missing=$("$PYTHON" -c '
import importlib.util as u
print(" ".join(m for m in ("fastapi", "uvicorn", "httptools", "uvloop", "celery", "redis", "xgboost", "numpy") if u.find_spec(m) is None))' 2>&1) ||
    die "$PYTHON does not run: $missing"
  [ -z "$missing" ] || die "the peers need Python modules $PYTHON lacks: $missing (tools/ensure-deps.sh bench, or PEERS=0 to bench without the peers)"
fi

labels=(prod dev prod-nofactors dev-nofactors)
[ "$PEERS" = 1 ] && labels=(prod fastapi-inproc prod-nofactors dev celery-queue dev-nofactors)
nconns=$(wc -w <<<"$CONNS")
load=$((ROUNDS * nconns * ${#labels[@]} * SECS))
estimate=$((load + ROUNDS * nconns * ${#labels[@]} / 2 + IDLE + 2 + 30))
echo "hokusai bench, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), nproc $(nproc), $(uname -m)"
echo "ROUNDS=$ROUNDS SECS=$SECS CONNS=\"$CONNS\" IDLE=$IDLE PEERS=$PEERS$([ "$PEERS" = 1 ] && echo " PEERS_DIR=$PEERS_DIR")"
echo "estimated time: $((estimate / 60)) min $((estimate % 60)) s ($load s of load, ${#labels[@]} runs x $nconns concurrencies x $ROUNDS rounds)"

work=$(mktemp -d "${TMPDIR:-/tmp}/hokusai-bench.XXXXXX")
declare -A pid=()  # process-group leader (started with setsid) by name
peer_redis=""
# members PGID: how many processes of the group run (zombies do not count).
members() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {n++} END {print n + 0}'; }
alive() { [ "$(members "$1")" -gt 0 ]; }
# signal SIG NAME: to NAME's group, or to NAME itself if it is still the
# subshell that has yet to run setsid.
signal() {
  local p=${pid[$2]}
  kill "-$1" -- "-$p" 2>/dev/null ||
    { [ "$(ps -o ppid= -p "$p" | tr -d ' ')" = $$ ] && kill "-$1" "$p" 2>/dev/null; } || true
}
# stop NAME...: SIGTERM to each group, SIGKILL to what is left after 5 s.
stop() {
  local g left live
  for g in "$@"; do signal TERM "$g"; done
  for _ in $(seq 25); do
    live=" $(ps -e -o pgid=,stat= | awk '$2 !~ /^Z/ {printf "%s ", $1}')"
    left=""
    for g in "$@"; do [[ $live == *" ${pid[$g]} "* ]] && left+=" $g"; done
    [ -z "$left" ] && return 0
    sleep 0.2
  done
  echo "bench:$left did not stop within 5 s of SIGTERM; SIGKILL" >&2
  for g in $left; do signal KILL "$g"; done
}
# Every group it started: the services first, then the Redis servers they use.
cleanup() {
  local rc=$? g svc=() dbs=()
  trap - EXIT INT TERM
  for g in "${!pid[@]}"; do if [[ $g == *redis ]]; then dbs+=("$g"); else svc+=("$g"); fi; done
  [ ${#svc[@]} = 0 ] || stop "${svc[@]}"
  [ -n "$peer_redis" ] && redis-cli -p "$peer_redis" shutdown nosave >/dev/null 2>&1 || true
  [ ${#dbs[@]} = 0 ] || stop "${dbs[@]}"
  wait 2>/dev/null || true
  rm -rf "$work"
  [ ${#pid[@]} = 0 ] || echo "bench: stopped the ${#pid[@]} process groups it started (${svc[*]} ${dbs[*]}), $(($(date +%s) - started)) s after its start" >&2
  exit $rc
}
trap cleanup EXIT
trap 'echo; echo "bench: interrupted; stopping what it started" >&2; exit 130' INT
trap 'exit 143' TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# spawn NAME DIR CMD...: CMD in DIR as the leader of a new process group, so
# that the group (every child it forks) can be stopped; output to NAME.log.
# A background subshell of a non-interactive shell is never a group leader, so
# setsid execs in place and $! is the new group's id.
spawn() {
  local name=$1 dir=$2; shift 2
  (cd "$dir" && exec setsid "$@") >"$work/$name.log" 2>&1 &
  pid[$name]=$!
}
# fail NAME WHAT [OTHER...]: the bench stops here, showing the tail of NAME's
# log (and of the OTHER processes').
fail() {
  local name=$1 what=$2 l; shift 2
  { echo "bench: FAIL: $name $what"
    if [[ $name == fastapi-inproc || $name == celery-* ]]; then
      echo "bench: that is a Python peer from $PEERS_DIR (its packages: README.md there); PEERS=0 benches without the peers"
    fi
    for l in "$name" "$@"; do
      echo "---- last lines of $l's log ($(wc -l <"$work/$l.log" 2>/dev/null || echo 0) lines)"; tail -n 20 "$work/$l.log" 2>/dev/null || true
    done
    echo "----"; } >&2
  exit 1
}
# ready NAME SECONDS WHAT CMD...: wait until CMD (quiet) succeeds, failing
# ("NAME WHAT") after SECONDS or as soon as NAME's process group, or that of a
# process it needs, dies.
# uvicorn --workers 2 outlives its workers: fewer than 3 processes in its group
# after 5 s means they died.
declare -A needs=([celery-queue]="celery-worker celery-redis" [api]="redis worker" [worker]="redis")
declare -A group_size=([fastapi-inproc]=3 [celery-queue]=3)
ready() {
  local name=$1 secs=$2 what=$3 n; shift 3
  local t0; t0=$(date +%s)
  local deadline=$((t0 + secs))
  until "$@"; do
    alive "${pid[$name]}" || fail "$name" "exited while starting" ${needs[$name]:-}
    if [ -n "${group_size[$name]:-}" ] && [ $(($(date +%s) - t0)) -ge 5 ] && [ "$(members "${pid[$name]}")" -lt "${group_size[$name]}" ]; then
      fail "$name" "lost its worker processes while starting" ${needs[$name]:-}
    fi
    for n in ${needs[$name]:-}; do alive "${pid[$n]}" || fail "$n" "exited while $name was starting" "$name"; done
    [ "$(date +%s)" -lt "$deadline" ] || fail "$name" "$what within $secs s" ${needs[$name]:-}
    sleep 0.2
  done
  [ "$(ps -o pgid= -p "${pid[$name]}" | tr -d ' ')" = "${pid[$name]}" ] || fail "$name" "is not in a process group of its own; the bench could not stop it"
}
get200() { curl -sf -m 2 -o /dev/null "$1"; }
pong() { redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; }
# post200 URL KEY FILE: one predict answers 200.
post200() { [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST "$1" -H "X-API-Key: $2" -H 'Content-Type: application/json' -d @"$3")" = 200 ]; }
lua() { printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-API-Key"] = "%s"\nwrk.body = [[%s]]\n' "$1" "$2" >"$3"; }

make -s build
U=/api/v1/models/21/predict
body='{"inputs": {"company_size": 1000, "engagement_score": 75, "website_visits": 12, "email_opens": 4, "content_downloads": 2, "demo_requested": true, "budget_confirmed": false, "industry": "Finance", "decision_timeline": "1-3 months", "title": "Director of Sales"}}'
plain=${body%\}}', "options": {"explain": false}}'
printf '%s' "$body" >"$work/body.json"

# prod: three processes, one P for the API and the worker.
rport=$(port); aport=$(port); hport=$(port)
spawn redis "$work" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize no --loglevel warning
ready redis 10 "answered no PING" pong "$rport"
export REDIS_URL="redis://127.0.0.1:$rport/0"
printf 'models:\n  - id: "21"\n    name: Sales Lead Scoring Model\n    source: file://%s\n' "$model_dir" >"$work/registry.yaml"
bin/hokusai models apply -f "$work/registry.yaml" >/dev/null
key=$(bin/hokusai keys create --tenant bench --limit unlimited) # a bench, not a partner
spawn worker "$root" env GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn bin/hokusai-worker --health-addr "127.0.0.1:$hport"
spawn api "$root" env GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn bin/hokusai-api --listen "127.0.0.1:$aport"
unset REDIS_URL

# dev: one process with its own private redis-server (a child, in its group).
dport=$(port); dhport=$(port)
spawn dev "$root" env -u REDIS_URL HOKUSAI_RATE_LIMIT=unlimited bin/hokusai dev --listen "127.0.0.1:$dport" --health-addr "127.0.0.1:$dhport" \
  --state-dir "$work/dev" --models "$model_dir"

if [ "$PEERS" = 1 ]; then
  # The same commands as run_peers.sh. Ports: uvicorn's are flags there, and
  # celery_queue.py takes its broker from BROKER (default port 6391).
  peer_redis=$(port); iport=$(port); cport=$(port)
  spawn celery-redis "$work" redis-server --port "$peer_redis" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize no --loglevel warning
  broker="redis://127.0.0.1:$peer_redis/0"
  spawn fastapi-inproc "$PEERS_DIR" env MODEL="$model" "$PYTHON" -m uvicorn fastapi_inproc:app --host 127.0.0.1 --port "$iport" \
    --workers 2 --http httptools --loop uvloop --log-level warning
  ready celery-redis 10 "answered no PING" pong "$peer_redis"
  spawn celery-worker "$PEERS_DIR" env MODEL="$model" BROKER="$broker" "$PYTHON" -m celery -A celery_queue.capp worker \
    --loglevel=warning --concurrency=2
  spawn celery-queue "$PEERS_DIR" env MODEL="$model" BROKER="$broker" "$PYTHON" -m uvicorn celery_queue:app --host 127.0.0.1 \
    --port "$cport" --workers 2 --http httptools --loop uvloop --log-level warning
fi

ready worker 20 "was not ready" get200 "http://127.0.0.1:$hport/readyz"
ready api 20 "was not ready" get200 "http://127.0.0.1:$aport/ready"
ready dev 20 "printed no API key" grep -q 'hk_' "$work/dev.log"
durl=$(grep -o 'http://[0-9.:]*/api/v1' "$work/dev.log" | head -1); durl=${durl%/api/v1}
dkey=$(grep -o 'hk_[A-Za-z0-9_-]*' "$work/dev.log" | head -1)
[ -n "$durl" ] && [ -n "$dkey" ] || fail dev "printed no API URL and key"
ready dev 20 "was not ready" get200 "http://127.0.0.1:$dhport/readyz"
declare -A url=([prod]="http://127.0.0.1:$aport$U" [dev]="$durl$U")
url[prod-nofactors]=${url[prod]}; url[dev-nofactors]=${url[dev]}
lua "$key" "$body" "$work/prod.lua"; lua "$key" "$plain" "$work/prod-nofactors.lua"
lua "$dkey" "$body" "$work/dev.lua"; lua "$dkey" "$plain" "$work/dev-nofactors.lua"
printf '%s' "$plain" >"$work/plain.json"
# Ready means a predict answers 200 (the API must have seen the worker's heartbeat).
for f in body plain; do
  ready api 20 "answered no 200 to a predict of $(cat "$work/$f.json")" post200 "${url[prod]}" "$key" "$work/$f.json"
  ready dev 20 "answered no 200 to a predict of $(cat "$work/$f.json")" post200 "${url[dev]}" "$dkey" "$work/$f.json"
done
if [ "$PEERS" = 1 ]; then
  url[fastapi-inproc]="http://127.0.0.1:$iport$U"; url[celery-queue]="http://127.0.0.1:$cport$U"
  # The celery one needs its worker too.
  ready fastapi-inproc 60 "answered no 200 to a predict" post200 "${url[fastapi-inproc]}" test-key "$PEERS_DIR/body.json"
  ready celery-queue 60 "answered no 200 to a predict" post200 "${url[celery-queue]}" test-key "$PEERS_DIR/body.json"
fi
sleep 1 # one heartbeat refresh
echo "up after $(($(date +%s) - started)) s: prod (api $aport, worker, redis $rport), dev ($durl)$([ "$PEERS" = 1 ] && echo ", fastapi-inproc :$iport, celery-queue :$cport (redis :$peer_redis)")"

# ticks NAME: CPU ticks (user + system) of every live process in NAME's
# process group: uvicorn's and Celery's workers, dev's own redis-server.
# The command name in /proc/PID/stat may hold spaces; fields count after it.
ticks() {
  local p t=0
  for p in $(ps -e -o pid=,pgid= | awk -v g="${pid[$1]}" '$2 == g {print $1}'); do
    t=$((t + $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
  done
  echo "$t"
}
# The processes whose CPU each configuration costs, as NAME=GROUP.
declare -A accounts=([prod]="api=api worker=worker redis=redis" [dev]="dev=dev" [fastapi-inproc]="uvicorn=fastapi-inproc"
  [celery-queue]="api=celery-queue worker=celery-worker redis=celery-redis")
accounts[prod-nofactors]=${accounts[prod]}; accounts[dev-nofactors]=${accounts[dev]}
# run LABEL C ROUND: one wrk run into runs/LABEL.C.ROUND, and the CPU ticks
# each of LABEL's processes took over it into runs/LABEL.C.ROUND.cpu.
mkdir "$work/runs"
run() {
  local l=$1 c=$2 i=$3 t=2 out="$work/runs/$1.$2.$3" a before=()
  [ "$c" = 1 ] && t=1
  for a in ${accounts[$l]}; do before+=("$(ticks "${a#*=}")"); done
  if [[ $l == fastapi-inproc || $l == celery-queue ]]; then
    # The peers' own post.lua, which reads body.json from the working directory.
    (cd "$PEERS_DIR" && wrk -t"$t" -c"$c" -d"${SECS}s" --timeout 10s --latency -s post.lua "${url[$l]}") >"$out" 2>&1 || true
  else
    wrk -t"$t" -c"$c" -d"${SECS}s" --timeout 10s --latency -s "$work/$l.lua" "${url[$l]}" >"$out" 2>&1 || true
  fi
  local k=0 spent=()
  for a in ${accounts[$l]}; do spent+=("${a%=*}=$(($(ticks "${a#*=}") - before[k]))"); k=$((k + 1)); done
  echo "${spent[*]}" >"$out.cpu"
  awk -v l="$l" -v c="$c" -v i="$i" '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /^Requests\/sec/{rps=$2} /Non-2xx|Socket errors/{bad=bad " " $0}
    END{printf "  r%s c=%-3s %-15s %9s req/s  p50 %-8s p99 %-8s%s\n", i, c, l, rps, p50, p99, (bad == "" ? "" : "  ERRORS:" bad)}' "$out"
}

for i in $(seq "$ROUNDS"); do
  order=("${labels[@]}")
  if [ $((i % 2)) = 0 ]; then order=(); for ((k = ${#labels[@]} - 1; k >= 0; k--)); do order+=("${labels[k]}"); done; fi
  for c in $CONNS; do for l in "${order[@]}"; do run "$l" "$c" "$i"; done; done
done

sleep 2 # let the last replies settle
c0=$(redis-cli -p "$rport" info stats | awk -F: '/^total_commands_processed/{print $2+0}')
sleep "$IDLE"
c1=$(redis-cli -p "$rport" info stats | awk -F: '/^total_commands_processed/{print $2+0}')

echo
rc=0
(python3 - "$work/runs" "$ROUNDS" "$(getconf CLK_TCK)" "$CONNS" "${labels[@]}" <<'PY'
import math, os, re, statistics, sys
runs, rounds, hz, conns, labels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(c) for c in sys.argv[4].split()], sys.argv[5:]
def ms(t, k):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % re.escape(k), t, re.M)
    return math.nan if not m else float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
def parse(l, c, i):
    t = open(f"{runs}/{l}.{c}.{i}").read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
    n = re.search(r"(\d+) requests in", t)
    return dict(rps=float(rps.group(1)) if rps else 0.0, p50=ms(t, "50%"), p99=ms(t, "99%"),
                n=int(n.group(1)) if n else 0, bad=bool(re.search(r"Non-2xx|Socket errors", t)))
med = lambda xs: statistics.median(xs) if xs else math.nan
names = {"prod": "prod, factors", "prod-nofactors": "prod, no factors", "dev": "dev, factors",
         "dev-nofactors": "dev, no factors", "fastapi-inproc": "peer fastapi-inproc", "celery-queue": "peer celery-queue"}
order = [l for l in ("prod", "prod-nofactors", "dev", "dev-nofactors", "fastapi-inproc", "celery-queue") if l in labels]
peer = "fastapi-inproc" if "fastapi-inproc" in labels else None
print(f"medians of {rounds} round(s); " + ("ratio = median of the per-round ratios to fastapi-inproc's req/s" if peer else "PEERS=0: no peers, no ratios"))
print(f"{'':4}{'configuration':22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>9}")
errors = []
for c in conns:
    r = {l: [parse(l, c, i) for i in range(1, rounds + 1)] for l in labels}
    for l in order:
        ratio = ""
        if peer and l != peer:
            ratio = f"{med([a['rps'] / b['rps'] for a, b in zip(r[l], r[peer]) if b['rps']]):.2f}x"
        bad = sum(x["bad"] for x in r[l])
        if bad:
            errors.append(f"c={c} {l}")
        print(f"c={c:<3}{names[l]:22}{med([x['rps'] for x in r[l]]):9.0f}{med([x['p50'] for x in r[l]]):9.2f}"
              f"{med([x['p99'] for x in r[l]]):9.2f}{ratio:>9}{'  ERRORS in %d run(s)' % bad if bad else ''}")
for c in [c for c in (16, 64) if c in conns]:
    print(f"cpu per request at c={c} (user + system, median of {rounds}), by process:")
    for l in order:
        per = {}
        for i in range(1, rounds + 1):
            n = parse(l, c, i)["n"]
            if n:
                for a in open(f"{runs}/{l}.{c}.{i}.cpu").read().split():
                    name, t = a.split("=")
                    per.setdefault(name, []).append(int(t) * 1e6 / hz / n)
        total = sum(med(v) for v in per.values())
        print(f"    {names[l]:22}{total:6.0f} us  " + ("(" + ", ".join(f"{p} {med(v):.0f}" for p, v in per.items()) + ")" if len(per) > 1 else ""))
if errors:
    print("runs with non-2xx answers or socket errors: " + ", ".join(errors))
    if any(not e.split()[1] in ("fastapi-inproc", "celery-queue") for e in errors):
        sys.exit(2)
PY
) || rc=$?
echo "idle: $(((c1 - c0) / IDLE)) Redis commands/s with one idle prod worker and API (heartbeats and snapshot refresh included)"
echo "took $(($(date +%s) - started)) s; absolute figures vary between runs and machines: compare only figures from one run"
[ $rc = 0 ] || echo "bench: FAIL: some of our runs had non-2xx answers or socket errors" >&2
exit $rc
