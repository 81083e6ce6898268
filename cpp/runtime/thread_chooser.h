// The thread count for a network's training steps, chosen by measuring: on a
// host that runs this machine's cores on shared hardware at times, a second
// thread can make a step slower than one thread does. Results never depend
// on the thread count (threads.h), so the choice changes only the time.
//
// Every TRIAL_EVERY steps of a batch size (and when the batch size changes,
// after one step to warm up) it times TRIALS steps on one thread and as many
// on the allowed count, alternately; then it keeps the faster count, more
// threads unless one thread was faster by MARGIN.
#pragma once

#include <chrono>

#include "common.h"

namespace bpfast {

class ThreadChooser {
public:
    static constexpr int TRIALS = 3;          // timed steps per count in a trial
    static constexpr long TRIAL_EVERY = 256;  // steps between trials
    static constexpr double MARGIN = 0.95;    // one thread wins when it takes less than this share of the time

    // The count for the next step of `batch` rows, at most `allowed`. A batch
    // smaller than the one being measured (an epoch's last) takes the chosen
    // count untimed; a larger one starts over.
    int next(index batch, int allowed);
    // The seconds that step took (the step given by the last next()).
    void record(double seconds);
    // The count chosen at the last trial (allowed while none ended).
    int chosen() const { return chosen_; }
    long trials() const { return trials_done_; }

private:
    index batch_ = -1;
    int allowed_ = 0, chosen_ = 0;
    long steps_since_trial_ = 0, trials_done_ = 0;
    bool warming_ = false, in_trial_ = false, timing_ = false;
    int timed_ = 0;  // steps timed in the trial at hand
    double best_one_ = 0.0, best_all_ = 0.0;
};

// Whether training steps choose their thread count so (default: yes, unless
// BPFAST_ADAPTIVE_THREADS=0); process-wide.
bool adaptive_threads();
void set_adaptive_threads(bool on);

// Sets get_num_threads(), on the thread that creates it, to n while it lives.
class ThreadLimit {
public:
    explicit ThreadLimit(int n);
    ~ThreadLimit();
    ThreadLimit(const ThreadLimit&) = delete;
    ThreadLimit& operator=(const ThreadLimit&) = delete;

private:
    int saved_;
};

// Seconds on a steady clock, for timing steps.
inline double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace bpfast
