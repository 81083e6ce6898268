// A process-wide pool of worker threads, created once and kept for the life
// of the process. parallel_for hands out task indices [0, n_tasks); which
// thread runs a task never changes what the task computes, so results do not
// depend on the thread count.
#pragma once

#include "common.h"

namespace bpfast {

// Threads used by parallel_for, the caller included: 1 to MAX_THREADS. The
// default is BPFAST_NUM_THREADS when set (clamped to that range), else the
// number of hardware threads.
constexpr int MAX_THREADS = 256;
int get_num_threads();
void set_num_threads(int n);  // std::invalid_argument outside [1, MAX_THREADS]
// The pool's count, whatever this thread's own limit (below): what scratch
// sized per thread needs to hold when a limited call may be followed by one that is not.
int pool_threads();
// This thread's own thread count, which get_num_threads() returns in place
// of the pool's when it is set (0: not set): a ThreadLimit (thread_chooser.h)
// sets it for a step, bpfast.sklearn's n_threads for an estimator's calls.
int& thread_limit();

// A non-owning reference to a callable taking a task index: unlike
// std::function it never allocates.
class TaskRef {
public:
    template <typename F>
    TaskRef(const F& f) : object_(&f), call_([](const void* o, index i) { (*static_cast<const F*>(o))(i); }) {}
    void operator()(index i) const { call_(object_, i); }

private:
    const void* object_;
    void (*call_)(const void*, index);
};

// Run task(i) for every i in [0, n_tasks) on up to get_num_threads() threads
// and return when all are done. If the pool is busy (another thread is in a
// parallel_for), the tasks run serially on the caller; so do they when there
// is one task or one thread, without touching the pool.
void parallel_for(index n_tasks, TaskRef task);

// f(begin, end) over [0, n) in chunks of CHUNK values, on the pool; one chunk
// runs inline. The split is fixed, so neither the work of a chunk nor any
// sum over chunks depends on the thread count.
constexpr index CHUNK = 1 << 15;

template <typename F>
void for_each_chunk(index n, const F& f) {
    const index chunks = (n + CHUNK - 1) / CHUNK;
    if (chunks <= 1) return f(index(0), n);
    parallel_for(chunks, [&](index c) { f(c * CHUNK, c + 1 < chunks ? (c + 1) * CHUNK : n); });
}

// Which thread of a parallel_for this is: 0 outside the pool's workers (the
// caller of parallel_for, or any other thread), 1 + the worker's index for a
// worker; below get_num_threads() inside a job. A caller can size per-thread
// scratch before the job, so that no worker grows its own during one.
int thread_slot();

// How many times the pool has started an OS thread (for tests: it must not grow per call).
long threads_started();

}  // namespace bpfast
