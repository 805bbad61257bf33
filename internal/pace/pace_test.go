package pace

import (
	"testing"
	"time"
)

// fakeTime is a clock that moves only when work is done or a pause slept.
type fakeTime struct {
	t      time.Time
	slept  time.Duration
	pauses []time.Duration // work done before each pause
	worked time.Duration
}

func (f *fakeTime) now() time.Time { return f.t }

func (f *fakeTime) sleep(d time.Duration) {
	f.pauses = append(f.pauses, f.worked)
	f.slept += d
	f.t = f.t.Add(d)
}

// work runs n steps of step each on p's fake clock.
func (f *fakeTime) work(p *Pacer, n int, step time.Duration) { f.workN(p, n, 1, step) }

// workN runs n steps of units units each, each taking step.
func (f *fakeTime) workN(p *Pacer, n, units int, step time.Duration) {
	for range n {
		f.t = f.t.Add(step)
		f.worked += step
		p.StepN(units)
	}
}

func newPacer(burst, pause time.Duration, busy func() bool) (*Pacer, *fakeTime) {
	f := &fakeTime{t: time.Unix(1_800_000_000, 0)}
	return &Pacer{Burst: burst, Pause: pause, Busy: busy, now: f.now, sleep: f.sleep}, f
}

func TestPausesAfterEachBurstWhileBusy(t *testing.T) {
	p, f := newPacer(100*time.Microsecond, time.Millisecond, func() bool { return true })
	// 10 ms of work in 1 us steps: the clock is read every 64 steps, so
	// each burst runs 128 us (the first reading after 100 us), then pauses.
	f.work(p, 10_000, time.Microsecond)
	if p.pauses < 70 || p.pauses > 80 {
		t.Fatalf("%d pauses in 10 ms of work with 100 us bursts, want about 77", p.pauses)
	}
	if f.slept != time.Duration(p.pauses)*time.Millisecond {
		t.Fatalf("slept %v over %d pauses of 1 ms", f.slept, p.pauses)
	}
	for i := 1; i < len(f.pauses); i++ {
		if burst := f.pauses[i] - f.pauses[i-1]; burst < 100*time.Microsecond || burst > 164*time.Microsecond {
			t.Fatalf("burst %d ran %v of work, want 100 us plus at most one clock check (64 us)", i, burst)
		}
	}
}

func TestPausesOnlyWhileBusy(t *testing.T) {
	busy := false
	p, f := newPacer(100*time.Microsecond, time.Millisecond, func() bool { return busy })
	f.work(p, 5_000, time.Microsecond)
	if p.pauses != 0 {
		t.Fatalf("%d pauses while nothing was in flight", p.pauses)
	}
	busy = true
	f.work(p, 5_000, time.Microsecond)
	if p.pauses < 30 {
		t.Fatalf("%d pauses in 5 ms of work once work was in flight, want about 38", p.pauses)
	}
}

func TestNilBusyAlwaysPauses(t *testing.T) {
	p, f := newPacer(100*time.Microsecond, 10*time.Microsecond, nil)
	f.work(p, 2_000, time.Microsecond)
	if p.pauses < 10 {
		t.Fatalf("%d pauses in 2 ms of work without a Busy", p.pauses)
	}
}

func TestZeroNegativeAndNilNeverPause(t *testing.T) {
	var nilPacer *Pacer
	nilPacer.Step()
	for _, burst := range []time.Duration{0, -time.Second} {
		p, f := newPacer(burst, time.Second, func() bool { return true })
		f.work(p, 10_000, time.Microsecond)
		if p.pauses != 0 {
			t.Fatalf("a pacer with Burst %v paused %d times", burst, p.pauses)
		}
	}
}

// A burst is wall-clock time, blocked time included: the first look at the
// clock after a wait longer than a burst pauses. (Counting only work let the
// API's share of a batch run denser, and sync p99 beside a 1M-row batch rose
// from 1.4-1.9x idle to 2.0-2.9x in tools/batch-bench.sh.)
func TestBlockedTimeCountsTowardABurst(t *testing.T) {
	p, f := newPacer(100*time.Microsecond, time.Millisecond, nil)
	f.work(p, checkEvery, time.Microsecond) // the first look starts the burst
	f.t = f.t.Add(time.Millisecond)         // blocked on I/O
	f.work(p, checkEvery, time.Microsecond)
	if p.pauses != 1 {
		t.Fatalf("%d pauses after a wait longer than a burst, want 1", p.pauses)
	}
}

// A large record counts as the units it is worth: records of 4,096 units
// taking 300 us each are each followed by a pause while busy. Counted as
// one unit each, the clock would be read only every 64 of them (19 ms of
// work) and such an upload would barely step aside.
func TestLargeUnitsPaceLikeManySmallOnes(t *testing.T) {
	p, f := newPacer(250*time.Microsecond, 500*time.Microsecond, nil)
	f.workN(p, 100, 4096, 300*time.Microsecond)
	if p.pauses < 98 {
		t.Fatalf("%d pauses over 100 records of 300 us, want one after each but the first", p.pauses)
	}
	q, g := newPacer(250*time.Microsecond, 500*time.Microsecond, nil)
	g.workN(q, 100, 1, 300*time.Microsecond)
	if q.pauses > 1 {
		t.Fatalf("%d pauses over 100 one-unit records, want at most 1: the contrast this test rests on", q.pauses)
	}
}
