#!/usr/bin/env bash
# One tenant attacks, another scores leads: does the second notice?
# Starts redis-server, hokusai-api and workers as separate processes, in
# SHAPE "split" (default, as docker-compose.yml and Terraform run them: a
# sync/async worker with one P, and a batch-only worker in the idle CPU
# class) or "single" (one worker serving every lane, as `hokusai dev`
# does), then loads them with sync
# predicts of tenant "victim" (wrk, C connections) for SECS seconds alone,
# and again for SECS seconds while tenant "hostile" sends, all at once:
#   - 1 MiB predicts of 100,000 keys, 8 at a time;
#   - 4 MiB JSONL batches of rows near the 1 MiB row limit, in a loop;
#   - 40 one-row batches whose callback_url hangs every webhook attempt;
#   - 200 connections trickling a predict body a byte a second.
# The victim's windows alternate, alone then under attack, ROUNDS times, each
# SECS/ROUNDS long, so the machine's drift falls on both alike (the hooks'
# 40 batches are sent in the first attack window only). Prints the victim's
# p50/p99 and errors in every window, and the median of the rounds' ratios.
#   SECS=20 ROUNDS=4 C=2 SHAPE=split ATTACKS=wide,batch,hooks,trickle tools/hostile-bench.sh
# The hostile tenant's key has the API's default rate limit
# (HOKUSAI_RATE_LIMIT, 1000/h), and, when HOSTILE_LIMIT is set (say
# 20/s), the tenant that limit of its own; the victim's key is unlimited.
# Needs redis-server, wrk, python3. Bounded: 2 x SECS of load; stops
# everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-20}
ROUNDS=${ROUNDS:-4}
WIN=$(( SECS / ROUNDS > 0 ? SECS / ROUNDS : 1 ))
C=${C:-2}
ATTACKS=${ATTACKS:-wide,batch,hooks,trickle}
SHAPE=${SHAPE:-split}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { for _ in $(seq 150); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "hostile-bench: $1 never came up" >&2; return 1; }

make -s build
rport=$(port); aport=$(port); hport=$(port); hook=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --loglevel warning >/dev/null 2>&1 &
pids+=($!)
export REDIS_URL="redis://127.0.0.1:$rport/0"
sleep 0.3
printf 'models:\n  - id: "21"\n    name: Sales Lead Scoring Model\n    source: file://%s/models/sales-lead-scoring\n' "$PWD" >"$work/registry.yaml"
bin/hokusai models apply -f "$work/registry.yaml" >/dev/null
victim=$(bin/hokusai keys create --tenant victim --limit unlimited)
hostile=$(bin/hokusai keys create --tenant hostile) # under the default limit (HOKUSAI_RATE_LIMIT)
if [ -n "${HOSTILE_LIMIT:-}" ]; then bin/hokusai keys limits --tenant hostile --limit "$HOSTILE_LIMIT" >/dev/null; fi
# The hostile webhooks' target: accepts connections and never answers.
python3 - "$hook" <<'PY' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(512)
held = []
while True:
    c, _ = s.accept(); held.append(c)
PY
pids+=($!)
lanes=sync,async,batch
if [ "$SHAPE" = split ]; then
  lanes=sync,async
  HOKUSAI_LOG_LEVEL=warn HOKUSAI_WEBHOOK_ALLOW_PRIVATE=1 bin/hokusai-worker --lanes batch --health-addr "127.0.0.1:$(port)" >"$work/batch-worker.log" 2>&1 &
  pids+=($!)
fi
GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn HOKUSAI_WEBHOOK_ALLOW_PRIVATE=1 bin/hokusai-worker --lanes "$lanes" --health-addr "127.0.0.1:$hport" >"$work/worker.log" 2>&1 &
pids+=($!)
GOMAXPROCS=1 HOKUSAI_LOG_LEVEL=warn bin/hokusai-api --listen "127.0.0.1:$aport" >"$work/api.log" 2>&1 &
pids+=($!)
waitfor "http://127.0.0.1:$hport/readyz"
waitfor "http://127.0.0.1:$aport/ready"
sleep 0.5
api="http://127.0.0.1:$aport"

body='{"inputs": {"company_size": 1000, "engagement_score": 75, "website_visits": 12, "email_opens": 4, "content_downloads": 2, "demo_requested": true, "budget_confirmed": false, "industry": "Finance", "decision_timeline": "1-3 months", "title": "Director of Sales"}}'
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-API-Key"] = "%s"\nwrk.body = [[%s]]\n' "$victim" "$body" >"$work/victim.lua"
summarize() { awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /^Requests\/sec/{rps=$2} /Non-2xx/{bad=$NF} /Socket errors/{sock=$0} END{printf "p50=%s p99=%s rps=%s non2xx=%s %s\n", p50, p99, rps, (bad==""?0:bad), sock}'; }
victim_run() { wrk -t1 -c"$C" -d"${WIN}s" --latency -s "$work/victim.lua" "$api/api/v1/models/21/predict" | summarize; }

# The attack, as files and one python driver that stops after SECS.
python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
def wide(size):
    parts, n, i = [], 2, 0
    while True:
        f = '"k%d":1' % i
        if n + len(f) + 1 > size: break
        parts.append(f); n += len(f) + 1; i += 1
    return "{" + ",".join(parts) + "}"
open(f"{w}/wide.json", "w").write('{"inputs": ' + wide((1 << 20) - 12) + "}")
row = wide((1 << 20) - 1)
open(f"{w}/wide.jsonl", "w").write((row + "\n") * 4)
PY
results=()
for round in $(seq "$ROUNDS"); do
idle=$(victim_run)
# The hostile driver runs under nice 19, standing in for a client on
# another machine: on a small box its own Python would otherwise take a
# core from the servers under test, which no server-side bound can help.
nice -n 19 python3 - "$work" "$api" "$hostile" "$WIN" "$hook" "$ATTACKS" "$round" <<'PY' >"$work/attack.$round.log" 2>&1 &
import socket, sys, threading, time, urllib.request
w, api, key, secs, hook = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
attacks = sys.argv[6].split(",")
first = sys.argv[7] == "1"
host, port = api[len("http://"):].split(":")
end = time.time() + secs
wide = open(f"{w}/wide.json", "rb").read()
batch = open(f"{w}/wide.jsonl", "rb").read()
counts = {}
def post(path, data, ctype):
    req = urllib.request.Request(api + path, data=data, method="POST",
                                 headers={"X-API-Key": key, "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as r: code = r.status
    except urllib.error.HTTPError as e: code = e.code
    except Exception as e: code = type(e).__name__
    counts[code] = counts.get(code, 0) + 1
def loop(fn):
    while time.time() < end: fn()
def trickle():
    s = socket.create_connection((host, int(port)))
    s.sendall(("POST /api/v1/models/21/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
               "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" % key).encode())
    while time.time() < end:
        try: s.send(b" ")
        except OSError: return
        time.sleep(1)
threads = []
if "wide" in attacks:
    threads += [threading.Thread(target=loop, args=(lambda: post("/api/v1/models/21/predict", wide, "application/json"),)) for _ in range(8)]
if "batch" in attacks:
    threads.append(threading.Thread(target=loop, args=(lambda: post("/api/v1/models/21/batches", batch, "application/x-ndjson"),)))
if "hooks" in attacks and first:
    for _ in range(40):
        post("/api/v1/models/21/batches?callback_url=http://127.0.0.1:%s/hook" % hook, b'{"engagement_score": 1}\n', "application/x-ndjson")
if "trickle" in attacks:
    threads += [threading.Thread(target=trickle) for _ in range(200)]
for t in threads: t.start()
for t in threads: t.join()
print("hostile answers:", counts)
PY
attack=$!
pids+=($attack)
during=$(victim_run)
wait "$attack" || true
echo "round $round victim alone:        $idle"
echo "round $round victim under attack: $during"
echo "round $round $(cat "$work/attack.$round.log")"
results+=("$idle|$during")
done
python3 - "${results[@]}" <<'PY'
import re, statistics, sys
def ms(s, k):
    m = re.search(k + r"=([\d.]+)(us|ms|s)", s)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
pairs = [r.split("|") for r in sys.argv[1:]]
p99 = [ms(d, "p99") / ms(i, "p99") for i, d in pairs]
p50 = [ms(d, "p50") / ms(i, "p50") for i, d in pairs]
print("p99 under attack / alone: %.2fx median of %d rounds (%s); p50: %.2fx" % (
    statistics.median(p99), len(p99), " ".join("%.2f" % r for r in p99), statistics.median(p50)))
PY
