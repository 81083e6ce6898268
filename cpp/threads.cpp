#include "threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace bpfast {
namespace {

int default_thread_count() {
    if (const char* env = std::getenv("BPFAST_NUM_THREADS")) {
        const int n = std::atoi(env);
        if (n >= 1) return n;
    }
    return std::max(1u, std::thread::hardware_concurrency());
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Spin briefly before sleeping: kernels of one training step come back to
// back, and a worker that is still spinning starts the next one without the
// cost of a wake-up. The spin is short (0.1 ms, against OpenBLAS's 0.1 s), so
// an idle pool does not hold a core for long.
constexpr auto SPIN_TIME = std::chrono::microseconds(100);

// Calls ready() until it returns true or SPIN_TIME has passed; returns its last answer.
template <typename Ready>
bool spin_until(Ready ready) {
    const auto deadline = std::chrono::steady_clock::now() + SPIN_TIME;
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (ready()) return true;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() > deadline) return ready();
    }
}

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
    void set_threads(int n) { threads_.store(std::max(1, n)); }
    long started() const { return started_.load(); }

    void run(index n_tasks, TaskRef task) {
        const int wanted = static_cast<int>(std::min<index>(threads(), n_tasks));
        std::unique_lock<std::mutex> busy(dispatch_, std::try_to_lock);
        if (wanted <= 1 || !busy.owns_lock()) {
            for (index i = 0; i < n_tasks; ++i) task(i);
            return;
        }
        grow(wanted - 1);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            task_ = &task;
            n_tasks_ = n_tasks;
            next_.store(0);
            helpers_ = wanted - 1;
            pending_.store(wanted - 1);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        work();
        if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, [&] { return pending_.load() == 0; });
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
        if (spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) return;
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
    }

    void loop(int id) {
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
            if (id >= helpers) continue;  // not needed for this job
            work();
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lock(mutex_);
                done_.notify_one();
            }
        }
    }

    std::atomic<int> threads_{default_thread_count()};
    std::atomic<long> started_{0};
    std::mutex dispatch_;  // one parallel_for at a time
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    std::vector<std::thread> workers_;
    const TaskRef* task_ = nullptr;
    index n_tasks_ = 0;
    std::atomic<index> next_{0};
    std::atomic<long> generation_{0};
    int helpers_ = 0;
    std::atomic<int> pending_{0};
    bool stopping_ = false;
};

Pool& pool() {
    static Pool instance;
    return instance;
}

}  // namespace

int get_num_threads() { return pool().threads(); }
void set_num_threads(int n) { pool().set_threads(n); }
long threads_started() { return pool().started(); }
void parallel_for(index n_tasks, TaskRef task) { pool().run(n_tasks, task); }

}  // namespace bpfast
