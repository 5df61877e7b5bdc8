#include "thread_pool.h"
#include "win32.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace moerun {

namespace {
// Binds a thread to one logical CPU; false where the OS refuses or cannot.
bool bind_thread(std::thread& t, int cpu) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(t.native_handle(), sizeof(set), &set) == 0;
#else
    (void)t;
    (void)cpu;
    return false;
#endif
}
}  // namespace

thread_pool::thread_pool(int n_threads, bool pin) : n_threads_(std::max(1, n_threads)), shares_(std::make_unique<share[]>(size_t(n_threads_))) {
    workers_.reserve(size_t(n_threads_ - 1));
    worker_cpus_.assign(size_t(n_threads_ - 1), -1);
    const std::vector<int> cpus = pin ? physical_core_cpus() : std::vector<int>();
    for (int i = 1; i < n_threads_; ++i) {
        workers_.emplace_back([this, i] { worker_main(i); });
        // More threads than cores: the extra workers share cores round robin.
        if (!cpus.empty()) {
            const int cpu = cpus[size_t(i) % cpus.size()];
            if (bind_thread(workers_.back(), cpu)) worker_cpus_[size_t(i - 1)] = cpu;
        }
    }
}

bool thread_pool::pinned() const {
    return !worker_cpus_.empty() && std::all_of(worker_cpus_.begin(), worker_cpus_.end(), [](int c) { return c >= 0; });
}

namespace {
// One step of a spin-wait. Every 64th step yields the core, so an oversubscribed machine (more
// runnable threads than cores) still schedules the thread being waited for.
inline void cpu_relax(int step) {
    if ((step & 63) == 63) {
        std::this_thread::yield();
        return;
    }
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}
constexpr int k_spin_iterations = 1 << 14;  // ~0.1-1 ms of pause instructions before sleeping
#ifdef MOERUN_PLANT_RACE
// Planted bug, sanitizer builds' moerun_core_planted only (CMakeLists.txt): every thread of a job
// counts it here without synchronization, a data race TSan must report (test/sanitizers.test.ts).
uint64_t planted_jobs_run = 0;
#endif
}  // namespace

thread_pool::~thread_pool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_.store(true);
    }
    start_cv_.notify_all();
    for (auto& w : workers_) w.join();
}

void thread_pool::run(const std::function<void(int, int)>& fn) {
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes job_ and pending_
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
        // Taking the lock orders this notify after a sleeper's predicate check (no lost wake-up).
        { std::lock_guard<std::mutex> lock(mutex_); }
        start_cv_.notify_all();
    }
    fn(0, n_threads_);
#ifdef MOERUN_PLANT_RACE
    ++planted_jobs_run;
#endif
    for (int spin = 0; spin < k_spin_iterations && pending_.load(std::memory_order_acquire) != 0; ++spin) cpu_relax(spin);
    if (pending_.load(std::memory_order_acquire) != 0) {
        std::unique_lock<std::mutex> lock(mutex_);
        done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
}

void thread_pool::worker_main(int index) {
    uint64_t seen = 0;
    for (;;) {
        for (int spin = 0; spin < k_spin_iterations && generation_.load(std::memory_order_acquire) == seen &&
                           bursts_.load(std::memory_order_relaxed) > 0;
             ++spin) {
            cpu_relax(spin);
        }
        if (generation_.load(std::memory_order_acquire) == seen) {
            std::unique_lock<std::mutex> lock(mutex_);
            sleepers_.fetch_add(1, std::memory_order_seq_cst);
            start_cv_.wait(lock, [&] { return stopping_.load() || generation_.load(std::memory_order_seq_cst) != seen; });
            sleepers_.fetch_sub(1, std::memory_order_relaxed);
        }
        if (stopping_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        (*job_)(index, n_threads_);
#ifdef MOERUN_PLANT_RACE
        ++planted_jobs_run;
#endif
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard<std::mutex> lock(mutex_);
            done_cv_.notify_one();
        }
    }
}

void thread_pool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    const int64_t max_chunks = (n + grain - 1) / grain;
    const int nth = int(std::min<int64_t>(n_threads_, max_chunks));
    if (nth <= 1) {
        fn(0, n);
        return;
    }
    run([&](int ith, int) {
        if (ith >= nth) return;
        const int64_t begin = n * ith / nth;
        const int64_t end = n * (ith + 1) / nth;
        if (begin < end) fn(begin, end);
    });
}

int physical_core_count() {
#ifdef _WIN32
    // One RelationProcessorCore record per physical core, whatever its SMT siblings.
    DWORD bytes = 0;
    GetLogicalProcessorInformationEx(RelationProcessorCore, nullptr, &bytes);
    std::vector<uint8_t> buf(bytes);
    auto* info = reinterpret_cast<SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX*>(buf.data());
    if (bytes && GetLogicalProcessorInformationEx(RelationProcessorCore, info, &bytes)) {
        int n = 0;
        for (DWORD at = 0; at < bytes; at += reinterpret_cast<SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX*>(buf.data() + at)->Size) ++n;
        if (n > 0) return n;
    }
#endif
    // Count distinct (physical id, core id) pairs; fall back to hardware_concurrency.
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::set<std::pair<std::string, std::string>> cores;
    std::string line, phys = "0";
    while (std::getline(cpuinfo, line)) {
        auto value = [&] { auto p = line.find(':'); return p == std::string::npos ? std::string() : line.substr(p + 2); };
        if (line.rfind("physical id", 0) == 0) phys = value();
        else if (line.rfind("core id", 0) == 0) cores.emplace(phys, value());
    }
    const int n = cores.empty() ? int(std::thread::hardware_concurrency()) : int(cores.size());
    return std::max(1, n);
}

std::vector<int> physical_core_cpus() {
    std::vector<int> cpus;
#if defined(__linux__)
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return cpus;
    std::set<std::pair<int, int>> seen;  // (package, core)
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        auto read_id = [cpu](const char* what) {
            char path[96];
            std::snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, what);
            std::ifstream f(path);
            int v = -1;
            return f >> v ? v : -1;
        };
        const int core = read_id("core_id"), package = read_id("physical_package_id");
        if (core < 0) return {};  // no topology: binding blindly could put two workers on one core
        if (seen.emplace(package, core).second) cpus.push_back(cpu);
    }
#endif
    return cpus;
}

}  // namespace moerun
