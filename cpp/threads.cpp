#include "threads.h"

#include <algorithm>
#include <atomic>
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

class Pool {
public:
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
            ++generation_;
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
            pending_ = wanted - 1;
            ++generation_;
        }
        wake_.notify_all();
        work();
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [&] { return pending_ == 0; });
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

    void loop(int id) {
        long seen = 0;
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                if (stopping_) return;
                if (id >= helpers_) continue;  // not needed for this job
            }
            work();
            std::lock_guard<std::mutex> lock(mutex_);
            if (--pending_ == 0) done_.notify_one();
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
    long generation_ = 0;
    int helpers_ = 0;
    int pending_ = 0;
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
