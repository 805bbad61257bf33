package stacktest

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/redisproc"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
)

// Within HOKUSAI_REDIS_RESERVE of maxmemory the API refuses new work with
// 503 queue_full (not "unreachable"), /ready stays 200 and names the
// reason, work accepted before still gets its result stored, and new work
// is taken again as soon as Redis has room.
func TestQueueFull(t *testing.T) {
	own := ownRedis(t)
	s := startStack(t, stackOptions{redisURL: own.URL, api: api.Config{RedisReserve: 4 << 20}})
	ctx := context.Background()
	async := map[string]string{"Prefer": "respond-async"}
	r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), async)
	if r.code != 202 {
		t.Fatalf("before the limit: %d %s", r.code, r.body)
	}
	accepted := r.json(t)["request_id"].(string)

	used := redisMemory(t, s, "used_memory")
	if err := s.rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(used+2<<20, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		return strings.Contains(string(s.do("GET", "/ready", nil, nil).body), `"reason":"queue_full"`)
	}, "/ready never named queue_full")
	if r := s.do("GET", "/ready", nil, nil); r.code != 200 {
		t.Errorf("/ready answered %d while full; want 200 with a reason", r.code)
	}
	for name, headers := range map[string]map[string]string{"sync": nil, "async": async} {
		r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), headers)
		if r.code != 503 || r.json(t)["code"] != "queue_full" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s predict within the reserve: %d %s (Retry-After %q), want 503 queue_full", name, r.code, r.body, r.header.Get("Retry-After"))
		}
	}
	if r := s.submitBatch(leadsCSV(t, 3, nil), "text/csv", "", nil); r.code != 503 || r.json(t)["code"] != "queue_full" {
		t.Errorf("batch within the reserve: %d %s, want 503 queue_full", r.code, r.body)
	}
	s.waitJob(t, accepted, "succeeded") // its result fits in the reserve

	if err := s.rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		return s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), async).code == 202
	}, "new work was still refused once Redis had room")
}

// Under HOKUSAI_ACCEPT_DURABILITY=replicas:1 a 202 and a 200 come after
// the replica has the work and the result; with the replica gone the API
// answers 503 queue_unavailable at once (WAIT's timeout, not a hang), and
// the job its body names (the master has it) runs and can be polled, as
// the 503 says.
func TestAcceptDurabilityReplicas(t *testing.T) {
	one := queue.Durability{Replicas: 1}
	s, replica := replicatedStack(t, one)

	if r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), nil); r.code != 200 {
		t.Fatalf("sync predict with a replica: %d %s", r.code, r.body)
	}
	r := s.do("POST", "/api/v1/models/21/jobs", []byte(`{"inputs": `+lead+`}`), nil)
	if r.code != 202 {
		t.Fatalf("async job with a replica: %d %s", r.code, r.body)
	}
	id := r.json(t)["request_id"].(string)
	onReplica := newRedis(t, replica.URL)
	if n := onReplica.Exists(context.Background(), jobs.JobKey(id)).Val(); n != 1 {
		t.Errorf("the replica lacks job %s's record right after its 202", id)
	}
	s.waitJob(t, id, "succeeded")

	replica.Stop()
	for _, path := range []string{"/api/v1/models/21/predict", "/api/v1/models/21/jobs"} {
		r := s.do("POST", path, []byte(`{"inputs": `+lead+`}`), nil)
		if r.code != 503 || r.json(t)["code"] != "queue_unavailable" || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s without its replica: %d %s, want 503 queue_unavailable with Retry-After", path, r.code, r.body)
		}
		id = r.json(t)["request_id"].(string)
	}
	// The job runs on the master, and waits for the replica to store its
	// result (its retries do not count the wait) rather than failing.
	if r := s.do("GET", "/api/v1/jobs/"+id, nil, nil); r.code != 200 {
		t.Fatalf("the job a 503 named: %d %s", r.code, r.body)
	}
	if err := replica.Restart(); err != nil {
		t.Fatal(err)
	}
	s.waitJob(t, id, "succeeded")
}

// BenchmarkRedisBytes measures what finished work keeps in Redis until its
// retention expires: used_memory after n sync predicts, n async jobs and
// one batch of n*10 rows, each run to its end, over the memory before,
// per predict, per job and per batch row (the sizing rule in
// docs/operations.md). Run it alone: go test -run '^$' -bench RedisBytes
// -benchtime 1x ./internal/stacktest/.
func BenchmarkRedisBytes(b *testing.B) {
	const n = 2000
	own := ownRedis(b)
	s := startStack(b, stackOptions{redisURL: own.URL})
	body := []byte(`{"inputs": ` + lead + `}`)
	for range b.N {
		settled := func() int64 {
			time.Sleep(2 * time.Second) // heartbeats and usage flushes settle
			return redisMemory(b, s, "used_memory")
		}
		base := settled()
		for range n {
			if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != 200 {
				b.Fatalf("sync predict: %d %s", r.code, r.body)
			}
		}
		afterSync := settled()
		var last string
		for range n {
			r := s.do("POST", "/api/v1/models/21/jobs", body, nil)
			if r.code != 202 {
				b.Fatalf("async job: %d %s", r.code, r.body)
			}
			last = r.json(b)["request_id"].(string)
		}
		s.waitJob(b, last, "succeeded")
		eventually(b, 60*time.Second, func() bool {
			return s.rdb.LLen(context.Background(), queue.Key(jobs.Queue("default", jobs.LaneAsync), "pending")).Val() == 0
		}, "async jobs still pending")
		afterAsync := settled()
		id := s.acceptedBatch(s.submitBatch(leadsCSV(b, 10*n, nil), "text/csv", "", nil))
		s.waitBatch(id, 2*time.Minute)
		afterBatch := settled()
		b.ReportMetric(float64(afterSync-base)/n, "B/sync")
		b.ReportMetric(float64(afterAsync-afterSync)/n, "B/async")
		b.ReportMetric(float64(afterBatch-afterAsync)/(10*n), "B/batch-row")
	}
}

// replicatedStack starts a stack, its API and worker under durability d,
// on a redis-server of its own with one replica, online.
func replicatedStack(t testing.TB, d queue.Durability) (*stack, *redisproc.Server) {
	t.Helper()
	master, replica := ownReplicated(t)
	s := startStack(t, stackOptions{redisURL: master.URL, api: api.Config{Durability: d}, noWorker: true})
	s.startWorker(master.URL, worker.Config{Durability: d})
	s.waitReady("21")
	return s, replica
}

// BenchmarkAcceptDurability compares sync predicts (c=8) and async
// submissions (c=8) under durability none and replicas:1, each stack on a
// master with one replica of its own, in interleaved rounds of the same
// run, and reports the median ratio of replicas:1 to none: throughput
// (under 1 is slower) and p50 latency (over 1 is slower). Run it alone:
// go test -run '^$' -bench AcceptDurability -benchtime 1x ./internal/stacktest/.
func BenchmarkAcceptDurability(b *testing.B) {
	const rounds, perRound, conc = 5, 400, 8
	none, _ := replicatedStack(b, queue.Durability{})
	durable, _ := replicatedStack(b, queue.Durability{Replicas: 1})
	body := []byte(`{"inputs": ` + lead + `}`)
	round := func(s *stack, path string, want int) (float64, time.Duration) {
		lat := make([]time.Duration, perRound)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < perRound; i += conc {
					t0 := time.Now()
					if r := s.do("POST", path, body, nil); r.code != want {
						b.Errorf("%s: %d %s", path, r.code, r.body)
						return
					}
					lat[i] = time.Since(t0)
				}
			}()
		}
		wg.Wait()
		return perRound / time.Since(start).Seconds(), percentile(lat, 50)
	}
	for range b.N {
		for _, kind := range []struct {
			name, path string
			want       int
		}{{"sync", "/api/v1/models/21/predict", 200}, {"async", "/api/v1/models/21/jobs", 202}} {
			var thr, p50 []float64
			for range rounds {
				tn, ln := round(none, kind.path, kind.want)
				td, ld := round(durable, kind.path, kind.want)
				thr = append(thr, td/tn)
				p50 = append(p50, float64(ld)/float64(ln))
				b.Logf("%s: none %.0f/s p50 %s; replicas:1 %.0f/s p50 %s", kind.name, tn, ln, td, ld)
			}
			b.ReportMetric(median(thr), kind.name+"-throughput-ratio")
			b.ReportMetric(median(p50), kind.name+"-p50-ratio")
		}
	}
}

// The API and a worker on redis-sentinel:// follow a failover without a
// restart: the master is killed (SIGKILL) under a trickle of async jobs;
// until the replica is promoted partners get 202 (go-redis retried in
// time) or 503 queue_unavailable with Retry-After, never a 500 or a hang;
// then 202s from the same processes on the new master, and every job
// accepted during and after the failover succeeds. The loss-counting
// form, under load, is make faults (tools/faults/redis-sentinel.sh).
func TestSentinelFailover(t *testing.T) {
	master, _ := ownReplicated(t)
	sentinel, err := redisproc.StartSentinel(t.TempDir(), master, "hokusai", time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(sentinel.Stop)
	s := startStack(t, stackOptions{redisURL: sentinel.URL})
	body := []byte(`{"inputs": ` + lead + `}`)
	var accepted []string
	accept := func(r reply) {
		if r.code == 202 {
			accepted = append(accepted, r.json(t)["request_id"].(string))
		}
	}
	for range 5 {
		accept(s.do("POST", "/api/v1/models/21/jobs", body, nil))
	}
	// Finished before the kill: a job running at the kill waits for asynq's
	// lease to expire (tens of seconds), which is not what this test is about.
	for _, id := range accepted {
		s.waitJob(t, id, "succeeded")
	}
	accepted = accepted[:0]
	master.Stop()
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr})
	t.Cleanup(func() { _ = sc.Close() })
	eventually(t, 30*time.Second, func() bool {
		switched := sc.GetMasterAddrByName(context.Background(), "hokusai").Val()
		r := s.do("POST", "/api/v1/models/21/jobs", body, nil)
		switch {
		case r.code == 202:
			accept(r)
			return len(switched) == 2 && net.JoinHostPort(switched[0], switched[1]) != master.Addr
		case r.code != 503 || r.json(t)["code"] != "queue_unavailable" || r.header.Get("Retry-After") == "":
			t.Fatalf("during the failover: %d %s, want 202 or 503 queue_unavailable with Retry-After", r.code, r.body)
		}
		return false
	}, "no job was accepted after the failover; logs:\n%s", s.logs)
	for _, id := range accepted {
		s.waitJob(t, id, "succeeded")
	}
}

// ownReplicated starts a redis-server for one test with one replica, and
// returns once the replica is online.
func ownReplicated(t testing.TB) (master, replica *redisproc.Server) {
	t.Helper()
	master = ownRedis(t)
	host, port, _ := net.SplitHostPort(master.Addr)
	replica, err := redisproc.StartWith(t.TempDir(), "--replicaof", host, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Stop)
	rdb := newRedis(t, master.URL)
	eventually(t, 10*time.Second, func() bool {
		return strings.Contains(rdb.Info(context.Background(), "replication").Val(), "state=online")
	}, "the replica never came online")
	return master, replica
}
