#include "runtime/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/thread_chooser.h"

#if defined(__linux__)
#include <sched.h>
#endif

namespace bpfast {
namespace {

int default_thread_count() {
    if (const char* env = std::getenv("BPFAST_NUM_THREADS")) {
        const int n = std::atoi(env);
        if (n >= 1) return std::min(n, MAX_THREADS);
    }
    return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, unsigned(MAX_THREADS)));
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Waiting. A worker spins for a while before it sleeps: kernels of one
// training step come back to back, and a worker that is still spinning starts
// the next one without the cost of a wake-up (1 ms, against OpenBLAS's
// 0.1 s, so an idle pool does not hold a core for long). The caller, once
// its own share of a job is done, spins until the job is finished and never
// sleeps: a caller woken by a worker is placed by Linux on the worker's CPU
// (wake-affine), and the two then share one CPU for whole runs of calls,
// which made calls on a 2-CPU machine up to twice as slow as on one thread.
constexpr auto SPIN_TIME = std::chrono::milliseconds(1);

// Calls ready() until it returns true or `limit` has passed; returns its last
// answer. A yield now and then lets another thread on this CPU run.
template <typename Ready>
bool spin_until(Ready ready, std::chrono::steady_clock::duration limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (ready()) return true;
            cpu_relax();
        }
        std::this_thread::yield();
        if (std::chrono::steady_clock::now() > deadline) return ready();
    }
}

int current_cpu() {
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

// If this thread runs on `cpu`, move it to another CPU it may use: take
// `cpu` out of its affinity mask for a moment (which migrates it at once),
// then put the mask back, so that the thread stays free to move later.
void leave_cpu(int cpu) {
#if defined(__linux__)
    if (cpu < 0 || sched_getcpu() != cpu) return;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2) return;
    cpu_set_t others = allowed;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) == 0) return;
    if (sched_setaffinity(0, sizeof others, &others) == 0) sched_setaffinity(0, sizeof allowed, &allowed);
#else
    (void)cpu;
#endif
}

thread_local int worker_slot = 0;

class Pool {
public:
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        for (std::thread& t : workers_) t.join();
    }

    int threads() const { return threads_.load(); }
    void set_threads(int n) {
        if (n < 1 || n > MAX_THREADS)
            throw std::invalid_argument("n must be between 1 and " + std::to_string(MAX_THREADS) + " threads; got " +
                                        std::to_string(n));
        threads_.store(n);
    }
    long started() const { return started_.load(); }

    void run(index n_tasks, TaskRef task) {
        const int wanted = static_cast<int>(std::min<index>(get_num_threads(), n_tasks));
        auto serially = [&] {
            for (index i = 0; i < n_tasks; ++i) task(i);
        };
        if (wanted <= 1) return serially();  // one task or one thread: no lock to take
        std::unique_lock<std::mutex> busy(dispatch_, std::try_to_lock);
        if (!busy.owns_lock()) return serially();
        grow(wanted - 1);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            task_ = &task;
            n_tasks_ = n_tasks;
            next_.store(0);
            helpers_ = wanted - 1;
            caller_cpu_ = current_cpu();
            // The new generation before the job opens: a helper that joins it
            // then sees that generation, and one that read an older job's helper
            // count backs out (join).
            generation_.fetch_add(1, std::memory_order_release);
            joined_.store(0, std::memory_order_release);  // open for helpers to join
        }
        wake_.notify_all();
        work();
        // Every task is claimed. Close the job, so that a helper that has not
        // joined yet (one not even scheduled, on a busy machine) never will,
        // and wait only for the helpers still running a task.
        joined_.fetch_or(CLOSED, std::memory_order_acq_rel);
        while (!spin_until([&] { return joined_.load(std::memory_order_acquire) == CLOSED; }, SPIN_TIME)) {
        }
        task_ = nullptr;
    }

private:
    void work() {
        for (index i = next_.fetch_add(1); i < n_tasks_; i = next_.fetch_add(1)) (*task_)(i);
    }

    void grow(int helpers) {
        while (static_cast<int>(workers_.size()) < helpers) {
            const int id = static_cast<int>(workers_.size());
            workers_.emplace_back([this, id] { loop(id); });
            ++started_;
        }
    }

    // Wait for a generation other than `seen`: spin first, then sleep.
    void await_job(long seen) {
        if (spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; }, SPIN_TIME))
            return;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return generation_.load() != seen; });
        }
        // Linux tends to wake a thread on the CPU of the thread that woke it;
        // leave the caller's CPU so that the two really run side by side.
        leave_cpu(caller_cpu_);
    }

    void loop(int id) {
        worker_slot = id + 1;
        long seen = 0;
        for (;;) {
            await_job(seen);
            int helpers;
            {
                // Take the generation and its helper count together, so that a
                // worker joins each job at most once.
                std::lock_guard<std::mutex> lock(mutex_);
                if (stopping_) return;
                seen = generation_.load();
                helpers = helpers_;
            }
            if (id >= helpers || !join(seen)) continue;  // not needed, or the job is over
            work();
            joined_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    // Join the open job if it is generation `seen`, whose helper count this
    // thread read: count this thread in unless the caller has closed it. A
    // later job may have opened since that count was read (with fewer
    // helpers, so that this thread's slot would be past the ones its caller
    // sized scratch for): then back out. While counted in, the job cannot
    // close, so the generation read after joining is the joined job's.
    bool join(long seen) {
        long state = joined_.load(std::memory_order_acquire);
        while (!(state & CLOSED))
            if (joined_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel)) {
                if (generation_.load(std::memory_order_acquire) == seen) return true;
                joined_.fetch_sub(1, std::memory_order_acq_rel);
                return false;
            }
        return false;
    }

    std::atomic<int> threads_{default_thread_count()};
    std::atomic<long> started_{0};
    std::mutex dispatch_;  // one parallel_for at a time
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<std::thread> workers_;
    const TaskRef* task_ = nullptr;
    index n_tasks_ = 0;
    std::atomic<index> next_{0};
    std::atomic<long> generation_{0};
    int helpers_ = 0;
    // Helpers inside the current job, plus CLOSED once the caller has claimed its last task.
    static constexpr long CLOSED = 1L << 40;
    std::atomic<long> joined_{CLOSED};
    bool stopping_ = false;
    std::atomic<int> caller_cpu_{-1};
};

Pool& pool() {
    static Pool instance;
    return instance;
}

}  // namespace

int& thread_limit() {
    thread_local int limit = 0;
    return limit;
}

int get_num_threads() {
    const int own = thread_limit();
    return own > 0 ? own : pool().threads();
}
void set_num_threads(int n) { pool().set_threads(n); }
int pool_threads() { return pool().threads(); }
long threads_started() { return pool().started(); }

ThreadLimit::ThreadLimit(int n) : saved_(thread_limit()) { thread_limit() = n; }
ThreadLimit::~ThreadLimit() { thread_limit() = saved_; }
int thread_slot() { return worker_slot; }
void parallel_for(index n_tasks, TaskRef task) { pool().run(n_tasks, task); }

}  // namespace bpfast
