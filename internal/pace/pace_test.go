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
func (f *fakeTime) work(p *Pacer, n int, step time.Duration) {
	for range n {
		f.t = f.t.Add(step)
		f.worked += step
		p.Step()
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
	if p.Pauses < 70 || p.Pauses > 80 {
		t.Fatalf("%d pauses in 10 ms of work with 100 us bursts, want about 77", p.Pauses)
	}
	if f.slept != time.Duration(p.Pauses)*time.Millisecond {
		t.Fatalf("slept %v over %d pauses of 1 ms", f.slept, p.Pauses)
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
	if p.Pauses != 0 {
		t.Fatalf("%d pauses while nothing was in flight", p.Pauses)
	}
	busy = true
	f.work(p, 5_000, time.Microsecond)
	if p.Pauses < 30 {
		t.Fatalf("%d pauses in 5 ms of work once work was in flight, want about 38", p.Pauses)
	}
}

func TestNilBusyAlwaysPauses(t *testing.T) {
	p, f := newPacer(100*time.Microsecond, 10*time.Microsecond, nil)
	f.work(p, 2_000, time.Microsecond)
	if p.Pauses < 10 {
		t.Fatalf("%d pauses in 2 ms of work without a Busy", p.Pauses)
	}
}

func TestZeroAndNilNeverPause(t *testing.T) {
	var nilPacer *Pacer
	nilPacer.Step()
	p, f := newPacer(0, time.Second, func() bool { return true })
	f.work(p, 10_000, time.Microsecond)
	if p.Pauses != 0 {
		t.Fatalf("a pacer without Burst paused %d times", p.Pauses)
	}
}
