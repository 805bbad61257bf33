package pace

import "time"

// Pacer paces one run of work. Call Step once per unit of work (a record, a
// row); once Burst has passed since the last pause it sleeps for Pause if
// Busy reports
// latency-sensitive work to give way to (always, when Busy is nil), so the
// run goes at full speed while there is none. A nil Pacer, or one with no
// Burst, never pauses. A Pacer is not safe for concurrent use.
type Pacer struct {
	Burst time.Duration
	Pause time.Duration
	Busy  func() bool

	steps  int
	since  time.Time // the burst's start
	pauses int
	now    func() time.Time    // nil: time.Now
	sleep  func(time.Duration) // nil: time.Sleep
}

// checkEvery is how many steps pass between looks at the clock: a unit of
// batch work takes 0.1-0.3 us, so a burst overruns by a few us at most and
// reading the clock costs under 1% of the work.
const checkEvery = 64

// Step counts one unit of work and pauses at the end of a burst.
func (p *Pacer) Step() { p.StepN(1) }

// StepN counts n units of work done at once (a record as large as n
// ordinary ones), so that a run of large records is paced like the same
// bytes in ordinary ones rather than once every checkEvery records.
func (p *Pacer) StepN(n int) {
	if p == nil || p.Burst <= 0 {
		return
	}
	p.steps += n
	if p.steps < checkEvery {
		return
	}
	p.steps = 0
	clock, sleep := p.now, p.sleep
	if clock == nil {
		clock, sleep = time.Now, time.Sleep
	}
	now := clock()
	switch {
	case p.since.IsZero():
		p.since = now
	case now.Sub(p.since) >= p.Burst:
		if p.Busy == nil || p.Busy() {
			// Go's timers wake a sleeping process on the next network poll,
			// so a sleep lasts at least Pause and, when nothing else in the
			// process is running, up to about a millisecond.
			sleep(p.Pause)
			p.pauses++
			now = clock()
		}
		p.since = now
	}
}
