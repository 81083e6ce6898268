#include "runtime/thread_chooser.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace bpfast {

namespace {
std::atomic<bool>& adaptive_setting() {
    static std::atomic<bool> on{[] {
        const char* env = std::getenv("BPFAST_ADAPTIVE_THREADS");
        return !(env && std::strcmp(env, "0") == 0);
    }()};
    return on;
}
}  // namespace

bool adaptive_threads() { return adaptive_setting().load(std::memory_order_relaxed); }
void set_adaptive_threads(bool on) { adaptive_setting().store(on, std::memory_order_relaxed); }

int ThreadChooser::next(index batch, int allowed) {
    timing_ = false;
    if (allowed <= 1) return 1;
    if (batch > batch_ || allowed != allowed_) {  // a new shape of work: warm up, then a trial
        batch_ = batch;
        allowed_ = allowed;
        chosen_ = allowed;
        warming_ = true;
        in_trial_ = false;
        timing_ = true;
        return allowed;
    }
    if (batch < batch_) return chosen_;
    timing_ = true;
    if (!in_trial_ && steps_since_trial_ >= TRIAL_EVERY) {
        in_trial_ = true;
        timed_ = 0;
    }
    if (in_trial_) return timed_ % 2 == 0 ? 1 : allowed;  // one thread, then all, alternately
    ++steps_since_trial_;
    return chosen_;
}

void ThreadChooser::record(double seconds) {
    if (!timing_) return;
    timing_ = false;
    if (warming_) {  // the first step of a shape grows the buffers: not timed
        warming_ = false;
        in_trial_ = true;
        timed_ = 0;
        return;
    }
    if (!in_trial_) return;
    double& best = timed_ % 2 == 0 ? best_one_ : best_all_;
    best = timed_ < 2 ? seconds : std::min(best, seconds);
    if (++timed_ < 2 * TRIALS) return;
    chosen_ = best_one_ < MARGIN * best_all_ ? 1 : allowed_;
    in_trial_ = false;
    steps_since_trial_ = 0;
    ++trials_done_;
}

}  // namespace bpfast
