// Package cpuclass moves the whole process into the kernel's idle
// scheduling class (SCHED_IDLE on Linux): its threads then run only on
// cycles no other process wants, and any other process preempts them the
// moment it wakes. A batch-only worker uses it so that, on cores it shares
// with the API, Redis or a sync worker, partners' sync predicts go first.
// Lowering one's own class needs no privilege. Yield lets such work hand
// its core over at points of its choosing, which a virtual machine's
// preemption of a busy core can be slow to do. It imports only the
// standard library.
package cpuclass
