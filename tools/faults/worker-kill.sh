#!/usr/bin/env bash
# Worker crash probe: kill -9 and SIGTERM of one of two workers under sync,
# async and batch load, then a ROWS-row batch undisturbed and with its
# worker killed. Loopback only; redis-server, hokusai-api and two
# hokusai-worker processes started here and stopped by their PIDs on exit.
#
# Each load row: the tasks the victim held when killed (it is killed at a
# moment it holds some: stopped, its holders read, killed or let run on),
# requests sent and accepted (200, 202, or a 504 whose job
# is then polled), lost (accepted, never succeeded within LIVENESS s),
# duplicated (a batch row in the results twice; a request id answered
# twice), errors by status, and time to recover: from the signal until the
# last work accepted before it finished (a sync caller answered, an async
# job succeeded: this includes the backlog queued before the signal, the
# batch finished). A worker killed holding tasks leaves
# them to the other worker's reclaim (HOKUSAI_RECLAIM_AFTER, 5s).
#
# ROWS (default 1,000,000; 0 skips the big batch) synthetic leads are
# written under /tmp. SECS (default 6) seconds of load a row, the signal
# at a third of it; CONC (default 8) concurrent clients.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${ROWS:-1000000}
SECS=${SECS:-6}
CONC=${CONC:-8}
LIVENESS=${LIVENESS:-90}
work=$(mktemp -d /tmp/hokusai-worker-kill.XXXXXX)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop_all EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { for _ in $(seq 300); do curl -sf "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "worker-kill: $* never answered" >&2; return 1; }

go build -o "$work/bin/" ./cmd/hokusai ./cmd/hokusai-api ./cmd/hokusai-worker
rport=$(free_port); aport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
export REDIS_URL="redis://127.0.0.1:$rport/0"
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
printf 'models:\n  - id: "21"\n    name: Sales Lead Scoring Model\n    source: file://%s/models/sales-lead-scoring\n' "$PWD" >"$work/registry.yaml"
"$work/bin/hokusai" models apply -f "$work/registry.yaml" >/dev/null
key=$("$work/bin/hokusai" keys create --tenant probe --limit unlimited)
HOKUSAI_LOG_LEVEL=warn "$work/bin/hokusai-api" --listen "127.0.0.1:$aport" >"$work/api.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$aport"

# worker NAME: start a worker (all lanes) and print its PID.
worker() {
  HOKUSAI_LOG_LEVEL=warn "$work/bin/hokusai-worker" --health-addr 127.0.0.1:0 >>"$work/$1.log" 2>&1 &
  echo $!
}
# ready N: wait until N workers serve model 21.
ready() {
  for _ in $(seq 600); do
    n=$(curl -sf -H "X-API-Key: $key" "$api/api/v1/models/21/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ready_workers"])' 2>/dev/null || echo 0)
    [ "$n" = "$1" ] && return 0
    sleep 0.1
  done
  echo "worker-kill: $1 workers never became ready" >&2
  return 1
}
export WORK=$work REDIS_PORT=$rport
for n in 20000 "$ROWS"; do
  [ "$n" = 0 ] || "$work/bin/hokusai" batch gen-leads "$n" -o "$work/leads-$n.csv" >/dev/null
done
survivor=$(worker survivor)
pids+=("$survivor")

# probe MODE SIGNAL VICTIM_PID [ROWS]: the load, the signal, the checks;
# prints one table row.
probe() {
  python3 - "$api" "$key" "$@" "$SECS" "$CONC" "$LIVENESS" <<'PY'
import collections, http.client, json, os, signal, subprocess, sys, threading, time
api, key, mode, sig, victim, rows, secs, conc, liveness = sys.argv[1:10]
port = int(api.rsplit(":", 1)[1]); victim = int(victim); rows = int(rows)
secs, conc, liveness = float(secs), int(conc), float(liveness)
lead = {"company_size": 250, "engagement_score": 82, "website_visits": 14, "email_opens": 9, "content_downloads": 3,
        "demo_requested": True, "budget_confirmed": True, "industry": "Technology", "decision_timeline": "1-3 months",
        "title": "VP of Sales"}
H = {"X-API-Key": key, "Content-Type": "application/json"}

def call(method, path, body=None, headers=H, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body, headers)
    r = c.getresponse(); b = r.read(); c.close()
    return r.status, r.getheader("X-Request-ID"), b

lock = threading.Lock()
sent, codes, accepted, answered_at = 0, collections.Counter(), {}, {}
seen = collections.Counter()
t_sig = None
end = time.time() + secs

def load():
    global sent
    body = json.dumps({"inputs": [lead] * 10, "options": {"explain": True}})
    path = "/api/v1/models/21/" + ("predict" if mode == "sync" else "jobs")
    while time.time() < end:
        start = time.time()
        try:
            st, rid, _ = call("POST", path, body, {**H, "Prefer": "wait=30"})
        except Exception as e:
            st, rid = "conn:" + type(e).__name__, None
        with lock:
            sent += 1
            codes[st] += 1
            if rid:
                seen[rid] += 1
            if st in (200, 202, 504):
                accepted[rid] = start
                if st == 200:
                    answered_at[rid] = time.time()

held = 0

def send_signal(queue):
    """SIGTERM the victim, or SIGKILL it at a moment it holds tasks of
    queue (stopped, its holders read, killed or let run a little more)."""
    global t_sig, held
    if sig == "TERM":
        t_sig = time.time()
        os.kill(victim, signal.SIGTERM)
        return
    for _ in range(300):
        os.kill(victim, signal.SIGSTOP)
        out = subprocess.run(["redis-cli", "-p", os.environ["REDIS_PORT"], "--no-raw", "HVALS", "hokusai:holders:{" + queue + "}"],
                             capture_output=True, text=True).stdout
        held = out.count(f"-{victim}-")
        if held:
            break
        os.kill(victim, signal.SIGCONT)
        time.sleep(0.01)
    t_sig = time.time()
    os.kill(victim, signal.SIGKILL)

def signal_victim():
    time.sleep(secs / 3)
    send_signal("default:" + mode)

def status(rid):
    try:
        st, _, b = call("GET", "/api/v1/jobs/" + rid, headers=H, timeout=10)
        return json.loads(b).get("status") if st == 200 else None
    except Exception:
        return None

if mode == "batch":
    csv = open(f"{os.environ['WORK']}/leads-{rows}.csv", "rb").read()
    st, _, b = call("POST", "/api/v1/models/21/batches?explain=true", csv, {**H, "Content-Type": "text/csv"})
    bid = json.loads(b)["batch_id"]
    t0 = time.time()
    while json.loads(call("GET", "/api/v1/batches/" + bid)[2]).get("rows_done", 0) < rows // 10:
        time.sleep(0.05)
    send_signal("default:batch")
    b = {}
    while time.time() < t_sig + liveness:
        b = json.loads(call("GET", "/api/v1/batches/" + bid)[2])
        if b.get("finished_at"):
            break
        time.sleep(0.1)
    done = time.time()
    st, _, res = call("GET", f"/api/v1/batches/{bid}/results?format=csv", timeout=600)
    ids = [l.split(",", 2)[1] for l in res.decode().splitlines()[1:] if l]
    dup = len(ids) - len(set(ids))
    lost = rows - len(set(ids)) if b.get("finished_at") else rows
    print(f"| batch {rows} rows | {sig} | {held} | 1 | 1 | {lost} | {dup} | {b.get('status')} | {done - t_sig:.1f} s (batch total {done - t0:.1f} s) |")
    sys.exit(0)

threads = [threading.Thread(target=load) for _ in range(conc)] + [threading.Thread(target=signal_victim)]
for t in threads: t.start()
for t in threads: t.join()
before = [rid for rid, s in accepted.items() if s < t_sig]
pending = set(rid for rid in accepted if rid not in answered_at)
deadline = time.time() + liveness
while pending and time.time() < deadline:
    for rid in list(pending):
        s = status(rid)
        if s == "succeeded":
            answered_at[rid] = time.time(); pending.discard(rid)
        elif s in ("failed", "canceled"):
            pending.discard(rid)
    time.sleep(0.2)
lost = sum(1 for rid in accepted if rid not in answered_at)
recover = max((answered_at[r] for r in before if r in answered_at), default=t_sig) - t_sig
errors = ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=str) if k not in (200, 202)) or "none"
dup = sum(1 for v in seen.values() if v > 1)
print(f"| {mode} c={conc} | {sig} | {held} | {sent} | {len(accepted)} | {lost} | {dup} | {errors} | {max(recover, 0):.1f} s |")
PY
}

echo "worker-kill probe, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
echo "| load | signal | held | sent | accepted | lost | duplicated | errors by status | time to recover |"
echo "|---|---|---:|---:|---:|---:|---:|---|---:|"
for mode in sync async batch; do
  for sig in KILL TERM; do
    victim=$(worker "victim-$mode-$sig")
    ready 2
    n=20000; [ "$mode" = batch ] || n=0
    probe "$mode" "$sig" "$victim" "$n"
    wait "$victim" 2>/dev/null || true
    ready 1
  done
done

[ "$ROWS" = 0 ] && exit 0
echo
echo "A $ROWS-row batch (explain off), two workers, one killed at 10% vs undisturbed:"
# big MODE: submit the leads, optionally kill a worker at 10%; prints seconds.
big() {
  victim=$(worker "big-$1")
  ready 2
  python3 - "$api" "$key" "$1" "$victim" "$ROWS" "$LIVENESS" <<'PY'
import http.client, json, os, signal, sys, time
api, key, mode, victim, rows, liveness = sys.argv[1:7]
port, victim, rows = int(api.rsplit(":", 1)[1]), int(victim), int(rows)
H = {"X-API-Key": key}
def call(method, path, body=None, headers=H):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body, headers); r = c.getresponse(); b = r.read(); c.close()
    return r.status, b
csv = open(f"{os.environ['WORK']}/leads-{rows}.csv", "rb").read()
t0 = time.time()
st, b = call("POST", "/api/v1/models/21/batches", csv, {**H, "Content-Type": "text/csv"})
bid = json.loads(b)["batch_id"]
killed = mode != "kill"
while True:
    s = json.loads(call("GET", "/api/v1/batches/" + bid)[1])
    if not killed and s.get("rows_done", 0) >= rows // 10:
        os.kill(victim, signal.SIGKILL); killed = True
    if s.get("finished_at") or time.time() - t0 > 3600:
        break
    time.sleep(0.1)
took = time.time() - t0
st, res = call("GET", f"/api/v1/batches/{bid}/results?format=csv")
ids = [l.split(",", 2)[1] for l in res.decode().splitlines()[1:] if l]
print(f"{mode}: {took:.1f} s, status {s.get('status')}, rows {len(ids)}, distinct {len(set(ids))}")
PY
  kill "$victim" 2>/dev/null || true
  wait "$victim" 2>/dev/null || true
  ready 1
}
big undisturbed
big kill
