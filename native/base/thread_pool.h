// A small persistent thread pool for data-parallel kernels. The caller thread takes part, so a pool
// of n threads has n-1 workers. Work is split into contiguous [begin, end) ranges.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace moerun {

class thread_pool {
public:
    // pin: each worker thread is bound to its own physical core (physical_core_cpus(): worker i to
    // the i-th, so the caller, which is not pinned, has the first to itself). Where binding fails
    // (another OS, a restricted affinity mask) the workers run unpinned: worker_cpus() says.
    explicit thread_pool(int n_threads, bool pin = false);
    ~thread_pool();
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    int size() const { return n_threads_; }
    // The logical CPU each worker (index 1..size()-1, at [index - 1]) is bound to, -1 where unpinned.
    const std::vector<int>& worker_cpus() const { return worker_cpus_; }
    // True when pinning was asked for and every worker is bound.
    bool pinned() const;

    // Runs fn(thread_index, n_threads) on every thread (the caller is index 0) and waits for all.
    // Not reentrant; one caller at a time (the owner serializes).
    void run(const std::function<void(int ith, int nth)>& fn);

    // While a burst is open, idle workers spin between jobs (a forward pass issues a job every few
    // microseconds); outside one they sleep at once, so an idle model costs no CPU and never
    // competes with the JS thread. Bursts nest.
    class burst {
    public:
        explicit burst(thread_pool& p) : p_(p) { p_.bursts_.fetch_add(1, std::memory_order_relaxed); }
        ~burst() { p_.bursts_.fetch_sub(1, std::memory_order_relaxed); }
        burst(const burst&) = delete;
        burst& operator=(const burst&) = delete;

    private:
        thread_pool& p_;
    };

    // Splits [0, n) into chunks of at least `grain` items, balanced over the threads.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

    // Runs unit(u) exactly once for every u in [bounds[0], bounds[nth]) on nth (1..size())
    // threads. Thread i owns the contiguous share [bounds[i], bounds[i + 1]) and works through it
    // front to back; a thread whose share is done takes the back half of the largest share left
    // as its new share, until none is left. bounds: non-decreasing, below 2^32.
    //
    // For weight streams (cpu/matmul.cpp): each thread's reads stay sequential (the prefetch of
    // cpu/tile_prefetch.h follows them), and a thread that started late or runs slower hands the
    // rest of its share to the others. With static shares the caller of a 2-vCPU VM's decode step
    // waited 13% of it (2.8 of 21 ms a token, Ling-mini Q8_0) for a worker that started its job
    // about 10 us late on average, whether it spun or yielded: a vCPU the host had preempted.
    template <typename Unit>
    void run_shares(int nth, const int64_t* bounds, const Unit& unit);

private:
    void worker_main(int index);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::vector<int> worker_cpus_;
    // Workers spin on generation_ for a short while after each job (decode issues jobs every few
    // microseconds, and a condition-variable wake-up costs tens of them), then sleep on start_cv_.
    std::mutex mutex_;
    std::condition_variable start_cv_, done_cv_;
    const std::function<void(int, int)>* job_ = nullptr;
    // The spun-on words live on their own cache lines: every idle worker polls generation_ while
    // finishing workers decrement pending_, and sharing a line would bounce it between all cores.
    alignas(64) std::atomic<uint64_t> generation_{0};  // bumped per job; workers run each generation once
    alignas(64) std::atomic<int> pending_{0};          // workers still running the current job
    alignas(64) std::atomic<int> sleepers_{0};         // workers blocked on start_cv_
    std::atomic<bool> stopping_{false};
    std::atomic<int> bursts_{0};                       // open bursts: workers spin only while > 0
    // run_shares' share of each thread, the units not yet taken, [front, back) packed as
    // front << 32 | back, one cache line each; kept for every call (one job at a time) instead of
    // allocated per call (a decode step makes some 80 of them).
    struct alignas(64) share {
        std::atomic<uint64_t> range;
    };
    std::unique_ptr<share[]> shares_;
};

template <typename Unit>
void thread_pool::run_shares(int nth, const int64_t* bounds, const Unit& unit) {
    if (nth <= 1) {
        if (nth == 1) {
            for (int64_t u = bounds[0]; u < bounds[1]; ++u) unit(u);
        }
        return;
    }
    const auto pack = [](uint64_t front, uint64_t back) { return front << 32 | back; };
    share* const shares = shares_.get();
    for (int i = 0; i < nth; ++i) shares[i].range.store(pack(uint64_t(bounds[i]), uint64_t(bounds[i + 1])), std::memory_order_relaxed);
    run([&](int ith, int) {
        if (ith >= nth) return;
        std::atomic<uint64_t>& own = shares[ith].range;
        for (;;) {
            uint64_t r = own.load(std::memory_order_relaxed);
            for (;;) {  // the own share's front unit, until it is empty
                const uint64_t f = r >> 32, b = r & 0xffffffffu;
                if (f >= b) break;
                if (own.compare_exchange_weak(r, pack(f + 1, b), std::memory_order_relaxed)) {
                    unit(int64_t(f));
                    r = own.load(std::memory_order_relaxed);
                }
            }
            // The back half (rounded up) of the share with the most units left becomes this one's.
            int victim = -1;
            uint64_t most = 0, seen = 0;
            for (int k = 1; k < nth; ++k) {
                const int s = (ith + k) % nth;
                const uint64_t v = shares[s].range.load(std::memory_order_relaxed);
                const uint64_t f = v >> 32, b = v & 0xffffffffu;
                if (f < b && b - f > most) {
                    most = b - f;
                    victim = s;
                    seen = v;
                }
            }
            if (victim < 0) return;
            const uint64_t f = seen >> 32, b = seen & 0xffffffffu, half = (b - f + 1) / 2;
            if (shares[victim].range.compare_exchange_strong(seen, pack(f, b - half), std::memory_order_relaxed)) {
                own.store(pack(b - half, b), std::memory_order_relaxed);
            }
        }
    });
}

// Physical cores (not SMT siblings) of this machine; at least 1.
int physical_core_count();

// One logical CPU per physical core that this process may run on (the first SMT sibling of each),
// in CPU order. Linux only (sysfs topology and sched_getaffinity); empty elsewhere or when unreadable.
std::vector<int> physical_core_cpus();

}  // namespace moerun
