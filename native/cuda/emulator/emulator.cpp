// The CUDA emulator: runs native/cuda's kernels on the CPU (see cuda_runtime.h for the model).
//
// A launch runs its blocks one after another on the calling thread, under one process-wide lock.
// A block's threads are fibers: the scheduler resumes each ready fiber in thread order until it
// finishes or waits at a barrier (__syncthreads, or the two halves of a warp exchange), then
// releases a barrier once every live thread of its block (or warp) waits there. A block that can
// make no progress (threads waiting at different barriers, a shuffle whose warp has exited
// lanes) is a launch failure, reported by cudaGetLastError, as a GPU would fault or hang.
//
// Streams are queues: a kernel launch or an asynchronous copy on a stream runs when the host waits
// for that stream (cudaStreamSynchronize, or an implicit wait: cudaFree, cudaFreeHost, destroying
// the stream), in the order queued, so a host that reads a copy's destination or rewrites its
// source before waiting sees what it would on a GPU: not the copy. The null stream runs at once.
//
// Device memory is host memory, counted against a budget (MOERUN_CUDA_EMULATOR_MEMORY bytes,
// default 24 GiB) so that out-of-memory paths can be exercised; cudaMemGetInfo reports it.
// MOERUN_CUDA_EMULATOR_DEVICES=0 makes it a driver with no device.
#include "cuda_runtime.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

extern "C" {
uint3 mc_emu_thread_idx, mc_emu_block_idx;
dim3 mc_emu_block_dim, mc_emu_grid_dim;
}

namespace {

// ---- fibers ----

constexpr size_t k_stack_bytes = 256 * 1024;  // per thread; a guard page below it
constexpr size_t k_guard_bytes = 4096;

#if defined(__x86_64__)
// mc_emu_switch(&from_sp, to_sp): pushes the callee-saved registers on the current stack, stores
// the stack pointer in from_sp, loads to_sp and pops the registers saved there (System V ABI).
extern "C" void mc_emu_switch(void** from_sp, void* to_sp);
asm(R"(
    .text
    .p2align 4
    .globl mc_emu_switch
    .hidden mc_emu_switch
    .type mc_emu_switch, @function
mc_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size mc_emu_switch, .-mc_emu_switch
)");
struct context {
    void* sp = nullptr;
};
#else
struct context {
    ucontext_t uc;
};
#endif

enum class fiber_state : uint8_t { ready, at_block_barrier, at_warp_barrier, done };

struct fiber {
    context ctx;
    char* stack = nullptr;  // k_guard_bytes + k_stack_bytes, mapped once and reused
    fiber_state state = fiber_state::done;
    uint3 tid{};
};

// The running launch (under g_lock).
struct launch_state {
    std::vector<fiber> fibers;  // grows to the largest block seen
    int n_threads = 0, current = -1;
    context scheduler;
    void (*body)(void*) = nullptr;
    void* arg = nullptr;
    std::vector<uint64_t> exchange;  // one slot per thread
    void* dynamic_shared = nullptr;
    std::string fault;  // why the block cannot go on
};

std::mutex g_lock;       // memory accounting and the last error
std::mutex g_run_lock;   // one grid runs at a time (the fibers' state is global)
launch_state g_launch;
cudaError_t g_last_error = cudaSuccess;

void fiber_main();

#if defined(__x86_64__)
void switch_to(context& from, context& to) { mc_emu_switch(&from.sp, to.sp); }
void start_context(fiber& f) {
    // Stack top 16-aligned; fiber_main is entered by `ret` as if called: rsp = top - 8.
    auto* top = reinterpret_cast<uintptr_t*>(f.stack + k_guard_bytes + k_stack_bytes);
    uintptr_t* sp = top - 1;                                   // fiber_main's (absent) return address
    *--sp = reinterpret_cast<uintptr_t>(&fiber_main);          // popped by ret
    for (int i = 0; i < 6; ++i) *--sp = 0;                     // rbp rbx r12..r15
    f.ctx.sp = sp;
}
#else
void switch_to(context& from, context& to) { swapcontext(&from.uc, &to.uc); }
void start_context(fiber& f) {
    getcontext(&f.ctx.uc);
    f.ctx.uc.uc_stack.ss_sp = f.stack + k_guard_bytes;
    f.ctx.uc.uc_stack.ss_size = k_stack_bytes;
    f.ctx.uc.uc_link = nullptr;
    makecontext(&f.ctx.uc, fiber_main, 0);
}
#endif

void fiber_main() {
    launch_state& L = g_launch;
    L.body(L.arg);
    fiber& f = L.fibers[size_t(L.current)];
    f.state = fiber_state::done;
    switch_to(f.ctx, L.scheduler);
    std::abort();  // a finished fiber is never resumed
}

// Makes the running fiber wait in `state` until the scheduler releases it.
void wait_at(fiber_state state) {
    launch_state& L = g_launch;
    fiber& f = L.fibers[size_t(L.current)];
    f.state = state;
    switch_to(f.ctx, L.scheduler);
}

bool ensure_stacks(int n) {
    launch_state& L = g_launch;
    if (int(L.fibers.size()) < n) L.fibers.resize(size_t(n));
    for (int i = 0; i < n; ++i) {
        fiber& f = L.fibers[size_t(i)];
        if (f.stack) continue;
        void* p = mmap(nullptr, k_guard_bytes + k_stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return false;
        mprotect(p, k_guard_bytes, PROT_NONE);  // an overflow faults instead of corrupting a neighbour
        f.stack = static_cast<char*>(p);
    }
    return true;
}

// Runs one block to its end; false (with L.fault) when it cannot make progress.
bool run_block() {
    launch_state& L = g_launch;
    const int n = L.n_threads;
    for (int i = 0; i < n; ++i) {
        fiber& f = L.fibers[size_t(i)];
        f.state = fiber_state::ready;
        f.tid = {unsigned(i) % mc_emu_block_dim.x, unsigned(i) / mc_emu_block_dim.x % mc_emu_block_dim.y,
                 unsigned(i) / (mc_emu_block_dim.x * mc_emu_block_dim.y)};
        start_context(f);
    }
    for (;;) {
        bool ran = false;
        for (int i = 0; i < n; ++i) {
            fiber& f = L.fibers[size_t(i)];
            if (f.state != fiber_state::ready) continue;
            L.current = i;
            mc_emu_thread_idx = f.tid;
            switch_to(L.scheduler, f.ctx);
            ran = true;
        }
        L.current = -1;
        if (ran) continue;
        // Nobody is ready: release the barriers every live thread has reached.
        int live = 0, at_block = 0;
        bool released = false;
        for (int w = 0; w < n; w += 32) {
            int w_live = 0, w_waiting = 0, w_done = 0;
            for (int i = w; i < n && i < w + 32; ++i) {
                const fiber_state s = L.fibers[size_t(i)].state;
                w_done += s == fiber_state::done;
                w_live += s != fiber_state::done;
                w_waiting += s == fiber_state::at_warp_barrier;
                at_block += s == fiber_state::at_block_barrier;
            }
            live += w_live;
            if (w_waiting > 0 && w_waiting == w_live) {
                if (w_done > 0) {
                    L.fault = "a warp shuffle in warp " + std::to_string(w / 32) + " with " + std::to_string(w_done) + " exited lanes";
                    return false;
                }
                for (int i = w; i < n && i < w + 32; ++i) L.fibers[size_t(i)].state = fiber_state::ready;
                released = true;
            }
        }
        if (live == 0) return true;
        if (released) continue;
        if (at_block == live) {
            for (int i = 0; i < n; ++i)
                if (L.fibers[size_t(i)].state == fiber_state::at_block_barrier) L.fibers[size_t(i)].state = fiber_state::ready;
            continue;
        }
        L.fault = "deadlock: " + std::to_string(at_block) + " of " + std::to_string(live) +
                  " live threads wait at __syncthreads, the others at a warp shuffle";
        return false;
    }
}

// ---- memory ----

std::unordered_map<void*, size_t> g_allocations;
size_t g_used = 0;

size_t memory_budget() {
    static const size_t budget = [] {
        const char* e = std::getenv("MOERUN_CUDA_EMULATOR_MEMORY");
        const unsigned long long v = e ? std::strtoull(e, nullptr, 10) : 0;
        return v ? size_t(v) : size_t(24) << 30;
    }();
    return budget;
}

bool has_device() {
    const char* e = std::getenv("MOERUN_CUDA_EMULATOR_DEVICES");
    return !(e && std::strcmp(e, "0") == 0);
}

int g_device = 0;

}  // namespace

// ---- the execution model's entry points (cuda_runtime.h) ----

extern "C" void mc_emu_syncthreads(void) { wait_at(fiber_state::at_block_barrier); }

extern "C" int mc_emu_lane(void) { return g_launch.current % 32; }

extern "C" uint64_t mc_emu_warp_exchange(uint64_t mine, int src_lane) {
    launch_state& L = g_launch;
    const int me = L.current, src = me / 32 * 32 + src_lane;
    L.exchange[size_t(me)] = mine;
    wait_at(fiber_state::at_warp_barrier);  // every lane has deposited
    const uint64_t r = src < L.n_threads ? L.exchange[size_t(src)] : mine;
    wait_at(fiber_state::at_warp_barrier);  // every lane has read before the slots are reused
    return r;
}

extern "C" void* mc_emu_dynamic_shared(void) { return g_launch.dynamic_shared; }

namespace {

// Runs a grid now; false (having printed why) when a block faulted.
bool run_grid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
    std::lock_guard<std::mutex> run(g_run_lock);
    launch_state& L = g_launch;
    const int threads = int(block.x * block.y * block.z);
    if (!ensure_stacks(threads)) {
        std::fprintf(stderr, "cuda emulator: cannot map %d fiber stacks\n", threads);
        return false;
    }
    L.n_threads = threads;
    L.body = [](void* f) { (*static_cast<const std::function<void()>*>(f))(); };
    L.arg = const_cast<std::function<void()>*>(&body);
    L.exchange.assign(size_t(threads), 0);
    L.dynamic_shared = shared_bytes ? std::malloc(shared_bytes) : nullptr;
    mc_emu_grid_dim = grid;
    mc_emu_block_dim = block;
    bool ok = true;
    for (unsigned z = 0; ok && z < grid.z; ++z)
        for (unsigned y = 0; ok && y < grid.y; ++y)
            for (unsigned x = 0; ok && x < grid.x; ++x) {
                mc_emu_block_idx = {x, y, z};
                if (!run_block()) {
                    std::fprintf(stderr, "cuda emulator: launch failed in block (%u, %u, %u): %s\n", x, y, z, L.fault.c_str());
                    ok = false;
                }
            }
    std::free(L.dynamic_shared);
    L.dynamic_shared = nullptr;
    return ok;
}

}  // namespace

// A stream: work queued until the host waits for it.
struct mc_emu_stream {
    std::mutex lock;
    std::deque<std::function<bool()>> work;  // each returns false on a kernel fault
    bool capturing = false;                  // work goes to `captured` instead
    std::vector<std::function<bool()>> captured;
};

// A recorded graph, and its instantiation: the work, in order.
struct mc_emu_graph {
    std::vector<std::function<bool()>> work;
};

namespace {

std::mutex g_streams_lock;
std::set<mc_emu_stream*> g_streams;

// Queues `work` on the stream, or runs it now on the null stream; false on a fault.
bool submit(cudaStream_t stream, std::function<bool()> work) {
    if (!stream) return work();
    std::lock_guard<std::mutex> lock(stream->lock);
    if (stream->capturing) stream->captured.push_back(std::move(work));
    else stream->work.push_back(std::move(work));
    return true;
}

// Runs what is queued on the stream; cudaErrorLaunchFailure when a kernel faulted.
cudaError_t drain(mc_emu_stream* stream) {
    if (!stream) return cudaSuccess;
    std::deque<std::function<bool()>> work;
    {
        std::lock_guard<std::mutex> lock(stream->lock);
        work.swap(stream->work);
    }
    bool ok = true;
    for (auto& w : work) ok = w() && ok;
    if (ok) return cudaSuccess;
    std::lock_guard<std::mutex> lock(g_lock);
    return g_last_error = cudaErrorLaunchFailure;
}

// What the runtime's device-wide waits do (cudaFree, cudaFreeHost).
cudaError_t drain_all() {
    std::vector<mc_emu_stream*> streams;
    {
        std::lock_guard<std::mutex> lock(g_streams_lock);
        streams.assign(g_streams.begin(), g_streams.end());
    }
    cudaError_t e = cudaSuccess;
    for (mc_emu_stream* st : streams) {
        const cudaError_t r = drain(st);
        if (r != cudaSuccess) e = r;
    }
    return e;
}

}  // namespace

void mc_emu_launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, std::function<void()> body) {
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
        std::fprintf(stderr, "cuda emulator: invalid launch configuration: grid (%u, %u, %u), block (%u, %u, %u)\n", grid.x, grid.y, grid.z,
                     block.x, block.y, block.z);
        std::lock_guard<std::mutex> lock(g_lock);
        g_last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (shared_bytes > 48 * 1024) {  // the most a launch gets without cudaFuncSetAttribute
        std::fprintf(stderr, "cuda emulator: %zu bytes of dynamic shared memory (more than 48 KiB)\n", shared_bytes);
        std::lock_guard<std::mutex> lock(g_lock);
        g_last_error = cudaErrorInvalidValue;
        return;
    }
    const bool ok = submit(stream, [grid, block, shared_bytes, body = std::move(body)] { return run_grid(grid, block, shared_bytes, body); });
    if (!ok) {
        std::lock_guard<std::mutex> lock(g_lock);
        g_last_error = cudaErrorLaunchFailure;
    }
}

// ---- the runtime API ----

extern "C" {

cudaError_t free_now(void* p);

cudaError_t cudaGetDeviceCount(int* count) {
    *count = has_device() ? 1 : 0;
    return has_device() ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
    if (!has_device() || device != 0) return cudaErrorInvalidDevice;
    std::memset(prop, 0, sizeof *prop);
    std::snprintf(prop->name, sizeof prop->name, "moerun CUDA emulator (the host CPU)");
    prop->totalGlobalMem = memory_budget();
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
    *version = 13000;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* version) {
    *version = 13000;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (!has_device()) return cudaErrorNoDevice;
    if (device != 0) return cudaErrorInvalidDevice;
    g_device = device;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
    *device = g_device;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    std::lock_guard<std::mutex> lock(g_lock);
    *total_bytes = memory_budget();
    *free_bytes = memory_budget() - g_used;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
    *stream = new mc_emu_stream;
    std::lock_guard<std::mutex> lock(g_streams_lock);
    g_streams.insert(*stream);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) { return cudaStreamCreate(stream); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    drain(stream);  // queued work still runs
    {
        std::lock_guard<std::mutex> lock(g_streams_lock);
        g_streams.erase(stream);
    }
    delete stream;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (stream && stream->capturing) return g_last_error = cudaErrorStreamCaptureUnsupported;  // as CUDA: no waiting while recording
    return drain(stream);
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
    if (!stream || stream->capturing) return g_last_error = cudaErrorInvalidValue;
    std::lock_guard<std::mutex> lock(stream->lock);
    stream->capturing = true;
    stream->captured.clear();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
    *graph = nullptr;
    if (!stream || !stream->capturing) return g_last_error = cudaErrorInvalidValue;
    std::lock_guard<std::mutex> lock(stream->lock);
    stream->capturing = false;
    *graph = new mc_emu_graph{std::move(stream->captured)};
    stream->captured.clear();
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
    *exec = new mc_emu_graph{graph->work};
    return cudaSuccess;
}
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, cudaGraphExecUpdateResultInfo* info) {
    if (exec->work.size() != graph->work.size()) {  // CUDA refuses another topology; the emulator, another length
        if (info) info->result = 1;
        return g_last_error = cudaErrorGraphExecUpdateFailure;
    }
    exec->work = graph->work;
    if (info) info->result = 0;
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    for (const auto& w : exec->work) submit(stream, w);
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
    std::lock_guard<std::mutex> lock(g_lock);
    *p = nullptr;
    if (bytes > memory_budget() - g_used) return g_last_error = cudaErrorMemoryAllocation;
    if (posix_memalign(p, 256, bytes ? bytes : 1) != 0) return g_last_error = cudaErrorMemoryAllocation;
    g_allocations[*p] = bytes;
    g_used += bytes;
    return cudaSuccess;
}
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }

cudaError_t cudaFree(void* p) {
    if (!p) return cudaSuccess;
    drain_all();  // cudaFree waits for the device
    return free_now(p);
}
cudaError_t free_now(void* p) {
    std::lock_guard<std::mutex> lock(g_lock);
    auto it = g_allocations.find(p);
    if (it == g_allocations.end()) return g_last_error = cudaErrorInvalidValue;
    g_used -= it->second;
    g_allocations.erase(it);
    std::free(p);
    return cudaSuccess;
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t stream) {
    if (!p) return cudaSuccess;
    submit(stream, [p] { return free_now(p) == cudaSuccess; });
    return cudaSuccess;
}

// Page-locked host memory is ordinary host memory here (not counted against the device budget).
cudaError_t cudaMallocHost(void** p, size_t bytes) {
    *p = std::malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : (g_last_error = cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* p) {
    drain_all();  // as cudaFree
    std::free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t stream) {
    if (bytes) submit(stream, [dst, src, bytes] {
            std::memmove(dst, src, bytes);
            return true;
        });
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
    if (bytes) submit(stream, [dst, value, bytes] {
            std::memset(dst, value, bytes);
            return true;
        });
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    std::lock_guard<std::mutex> lock(g_lock);
    const cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
#define MC_EMU_NAME(x) \
    case x: return #x;
        MC_EMU_NAME(cudaSuccess) MC_EMU_NAME(cudaErrorInvalidValue) MC_EMU_NAME(cudaErrorMemoryAllocation)
        MC_EMU_NAME(cudaErrorInitializationError) MC_EMU_NAME(cudaErrorInvalidConfiguration) MC_EMU_NAME(cudaErrorInvalidDevice)
        MC_EMU_NAME(cudaErrorInsufficientDriver) MC_EMU_NAME(cudaErrorNoDevice) MC_EMU_NAME(cudaErrorStubLibrary)
        MC_EMU_NAME(cudaErrorCompatNotSupportedOnDevice) MC_EMU_NAME(cudaErrorNoKernelImageForDevice)
        MC_EMU_NAME(cudaErrorInvalidDeviceFunction) MC_EMU_NAME(cudaErrorUnsupportedPtxVersion) MC_EMU_NAME(cudaErrorLaunchFailure)
        MC_EMU_NAME(cudaErrorStreamCaptureUnsupported) MC_EMU_NAME(cudaErrorGraphExecUpdateFailure)
#undef MC_EMU_NAME
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory (the emulator's budget, MOERUN_CUDA_EMULATOR_MEMORY)";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorLaunchFailure: return "unspecified launch failure (the emulator printed why)";
        default: return cudaGetErrorName(e);
    }
}

cudaError_t mc_emu_func_attributes(cudaFuncAttributes* attr) {
    attr->maxThreadsPerBlock = 1024;
    return has_device() ? cudaSuccess : cudaErrorNoDevice;
}

}  // extern "C"
