// The N-API layer: the only code that includes napi.h. Every load, parse and evaluate runs on the
// libuv thread pool (AsyncWorker) and settles a Promise; the JS thread only converts values.
// Native failures reject with an Error whose `code` is the core's stable error code; lib/ wraps it
// in MoerunError with the caller's stack.
#include <napi.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "../base/thread_pool.h"
#include "../include/moerun.h"
#include "../cpu/quantize.h"

namespace moerun::addon {
namespace {

// ---- errors ----------------------------------------------------------------------------------

Napi::Error make_error(Napi::Env env, const char* code, const std::string& message) {
    Napi::Error e = Napi::Error::New(env, message);
    e.Set("code", Napi::String::New(env, code));
    return e;
}

Napi::Value throw_error(Napi::Env env, const char* code, const std::string& message) {
    make_error(env, code, message).ThrowAsJavaScriptException();
    return env.Undefined();
}

// ---- options --------------------------------------------------------------------------------

// A KV cache element type by its option name (f32, f16, bf16, q8_0).
std::optional<tensor_type> parse_kv_type(const std::string& name) {
    if (name == "f32") return tensor_type::F32;
    if (name == "f16") return tensor_type::F16;
    if (name == "bf16") return tensor_type::BF16;
    if (name == "q8_0") return tensor_type::Q8_0;
    return std::nullopt;
}

// ---- JS values an env may fail to make --------------------------------------------------------
//
// A Worker being terminated keeps running its JS until the termination lands, while every N-API
// call that needs JS (promises, array buffers, ...) already fails. node-addon-api then returns an
// empty value, or, for Napi::Promise::Deferred, leaves the promise handle uninitialised, which
// crashed Node when returned to JS. The helpers below turn each such failure into an empty value,
// which N-API returns to JS as undefined, and never write through a failed allocation.

// A new typed array holding `n` elements of `src`, converted to the array's element type.
template <typename TypedArray, typename Elem>
Napi::Value typed_array_copy(Napi::Env env, const Elem* src, size_t n) {
    TypedArray a = TypedArray::New(env, n);
    if (a.IsEmpty()) return Napi::Value();
    auto* dst = a.Data();
    using Out = std::remove_pointer_t<decltype(dst)>;
    if constexpr (std::is_same_v<Out, Elem>) {
        if (n) std::memcpy(dst, src, n * sizeof(Elem));
    } else {
        for (size_t i = 0; i < n; ++i) dst[i] = Out(src[i]);
    }
    return a;
}

// Runs `work` on the libuv pool; `done` converts its result on the JS thread. A moerun::error (or
// any std::exception) rejects the promise with a coded Error.
template <typename Result>
class promise_worker : public Napi::AsyncWorker {
public:
    using work_fn = std::function<Result()>;
    using done_fn = std::function<Napi::Value(Napi::Env, Result&)>;

    promise_worker(Napi::Env env, napi_deferred deferred, work_fn work, done_fn done)
        : Napi::AsyncWorker(env, "moerun"), deferred_(deferred), work_(std::move(work)), done_(std::move(done)) {}

protected:
    void Execute() override {
        try {
            result_ = work_();
        } catch (const error& e) {
            code_ = error_code_name(e.code());
            message_ = e.what();
        } catch (const std::bad_alloc&) {
            code_ = "ERR_OUT_OF_MEMORY";
            message_ = "out of memory";
        } catch (const std::exception& e) {
            code_ = "ERR_INTERNAL";
            message_ = e.what();
        }
    }
    void OnOK() override {
        Napi::Env env = Env();
        Napi::HandleScope scope(env);
        if (code_) return settle(false, make_error(env, code_, message_).Value());
        Napi::Value v = done_(env, result_);
        if (env.IsExceptionPending()) return settle(false, env.GetAndClearPendingException().Value());
        settle(true, v);
    }
    void OnError(const Napi::Error& e) override { settle(false, e.Value()); }

private:
    // An empty value (the env can no longer make one) settles as undefined; where JS can no
    // longer run, settling itself fails, and nobody is left to observe the promise.
    void settle(bool resolve, Napi::Value v) {
        napi_value value = v.IsEmpty() ? Env().Undefined() : v;
        if (resolve) napi_resolve_deferred(Env(), deferred_, value);
        else napi_reject_deferred(Env(), deferred_, value);
    }

    napi_deferred deferred_;
    work_fn work_;
    done_fn done_;
    Result result_{};
    const char* code_ = nullptr;
    std::string message_;
};

// The promise of `work` run by a promise_worker, or an empty value, without starting the work,
// where this env can no longer make a promise (see above).
template <typename Result>
Napi::Value queue(Napi::Env env, typename promise_worker<Result>::work_fn work, typename promise_worker<Result>::done_fn done) {
    napi_deferred deferred = nullptr;
    napi_value promise = nullptr;
    if (napi_create_promise(env, &deferred, &promise) != napi_ok) return Napi::Value();
    (new promise_worker<Result>(env, deferred, std::move(work), std::move(done)))->Queue();
    return Napi::Value(env, promise);
}

// ---- GGUF metadata to JS -----------------------------------------------------------------------

template <typename TypedArray, typename Elem>
Napi::Value typed_copy(Napi::Env env, const gguf_value& v) {
    TypedArray a = TypedArray::New(env, size_t(v.count));
    if (a.IsEmpty()) return Napi::Value();  // see typed_array_copy
    std::memcpy(a.Data(), v.data, size_t(v.count) * sizeof(Elem));  // unaligned little-endian elements in the mapping
    return a;
}

Napi::Value integer_to_js(Napi::Env env, gguf_type type, int64_t i) {
    if (type == gguf_type::u64) {
        const uint64_t u = uint64_t(i);
        if (u <= (1ull << 53)) return Napi::Number::New(env, double(u));
        return Napi::BigInt::New(env, u);
    }
    if (i > (1ll << 53) || i < -(1ll << 53)) return Napi::BigInt::New(env, i);
    return Napi::Number::New(env, double(i));
}

Napi::Value value_to_js(Napi::Env env, const gguf_value& v) {
    switch (v.type) {
        case gguf_type::f32: case gguf_type::f64: return Napi::Number::New(env, v.f);
        case gguf_type::boolean: return Napi::Boolean::New(env, v.i != 0);
        case gguf_type::string: return Napi::String::New(env, v.str.data(), v.str.size());
        case gguf_type::array: break;
        default: return integer_to_js(env, v.type, v.i);
    }
    switch (v.elem_type) {
        case gguf_type::u8: return typed_copy<Napi::Uint8Array, uint8_t>(env, v);
        case gguf_type::i8: return typed_copy<Napi::Int8Array, int8_t>(env, v);
        case gguf_type::u16: return typed_copy<Napi::Uint16Array, uint16_t>(env, v);
        case gguf_type::i16: return typed_copy<Napi::Int16Array, int16_t>(env, v);
        case gguf_type::u32: return typed_copy<Napi::Uint32Array, uint32_t>(env, v);
        case gguf_type::i32: return typed_copy<Napi::Int32Array, int32_t>(env, v);
        case gguf_type::f32: return typed_copy<Napi::Float32Array, float>(env, v);
        case gguf_type::f64: return typed_copy<Napi::Float64Array, double>(env, v);
        case gguf_type::u64: return typed_copy<Napi::BigUint64Array, uint64_t>(env, v);
        case gguf_type::i64: return typed_copy<Napi::BigInt64Array, int64_t>(env, v);
        case gguf_type::boolean: {
            Napi::Array a = Napi::Array::New(env, size_t(v.count));
            for (uint64_t k = 0; k < v.count; ++k) a.Set(uint32_t(k), Napi::Boolean::New(env, v.data[k] != 0));
            return a;
        }
        case gguf_type::string: {
            Napi::Array a = Napi::Array::New(env, v.strings.size());
            for (size_t k = 0; k < v.strings.size(); ++k) a.Set(uint32_t(k), Napi::String::New(env, v.strings[k].data(), v.strings[k].size()));
            return a;
        }
        default: {  // nested arrays
            Napi::Array a = Napi::Array::New(env, v.items.size());
            for (size_t k = 0; k < v.items.size(); ++k) a.Set(uint32_t(k), value_to_js(env, v.items[k]));
            return a;
        }
    }
}

// Numeric arrays longer than this (a vocabulary's scores and token types: 150k elements) are
// deferred too, when max_inline is given: the caller allocates the typed array and fills it a
// piece at a time (numeric_array_into_js), since copying a fresh megabyte in one call costs
// milliseconds of page faults.
constexpr uint64_t k_numeric_inline_max = 16384;

// The typed array class of a numeric GGUF element type, or nullptr.
const char* numeric_array_name(gguf_type t) {
    switch (t) {
        case gguf_type::u8: return "Uint8Array";
        case gguf_type::i8: return "Int8Array";
        case gguf_type::u16: return "Uint16Array";
        case gguf_type::i16: return "Int16Array";
        case gguf_type::u32: return "Uint32Array";
        case gguf_type::i32: return "Int32Array";
        case gguf_type::f32: return "Float32Array";
        case gguf_type::f64: return "Float64Array";
        case gguf_type::u64: return "BigUint64Array";
        case gguf_type::i64: return "BigInt64Array";
        default: return nullptr;
    }
}

// arrayInto(key, begin, target): copies elements begin.. of the numeric array `key` into the
// typed array `target` (of the array's class), as many as fit.
Napi::Value numeric_array_into_js(const Napi::CallbackInfo& cb, const gguf_file& f) {
    Napi::Env env = cb.Env();
    if (cb.Length() < 3 || !cb[0].IsString() || !cb[1].IsNumber() || !cb[2].IsTypedArray()) {
        return throw_error(env, "ERR_INVALID_ARGUMENT", "arrayInto(key: string, begin: number, target: TypedArray)");
    }
    const std::string key = cb[0].As<Napi::String>();
    const gguf_value* v = f.find(key);
    const char* name = v && v->type == gguf_type::array ? numeric_array_name(v->elem_type) : nullptr;
    if (!name) return throw_error(env, "ERR_INVALID_ARGUMENT", "arrayInto: '" + key + "' is not a numeric array");
    Napi::TypedArray target = cb[2].As<Napi::TypedArray>();
    const size_t elem = gguf_type_size(v->elem_type);
    if (target.ElementSize() != elem) return throw_error(env, "ERR_INVALID_ARGUMENT", std::string("arrayInto: target must be a ") + name);
    const uint64_t begin = uint64_t(std::clamp(cb[1].As<Napi::Number>().Int64Value(), int64_t(0), int64_t(v->count)));
    const uint64_t n = std::min<uint64_t>(target.ElementLength(), v->count - begin);
    auto* dst = static_cast<uint8_t*>(target.ArrayBuffer().Data()) + target.ByteOffset();
    std::memcpy(dst, v->data + begin * elem, size_t(n * elem));
    return Napi::Number::New(env, double(n));
}

// String arrays longer than `max_inline` (vocabularies: 150k tokens, 280k merges) are returned as
// { deferredStrings: count } and fetched by the caller as string tables, chunk by chunk
// (string_table_chunk_to_js), so no call holds the JS thread for long.
Napi::Object gguf_to_js(Napi::Env env, const gguf_file& f, size_t max_inline = SIZE_MAX) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("version", Napi::Number::New(env, f.version()));
    out.Set("alignment", Napi::Number::New(env, f.alignment()));
    out.Set("dataOffset", Napi::Number::New(env, double(f.data_offset())));
    out.Set("fileSize", Napi::Number::New(env, double(f.file_size())));
    Napi::Object md = Napi::Object::New(env);
    for (const auto& [key, value] : f.metadata()) {
        if (value.type == gguf_type::array && value.elem_type == gguf_type::string && value.strings.size() > max_inline) {
            Napi::Object marker = Napi::Object::New(env);
            marker.Set("deferredStrings", Napi::Number::New(env, double(value.strings.size())));
            md.Set(key, marker);
        } else if (max_inline != SIZE_MAX && value.type == gguf_type::array && value.count > k_numeric_inline_max &&
                   numeric_array_name(value.elem_type)) {
            Napi::Object marker = Napi::Object::New(env);
            marker.Set("deferredArray", Napi::Number::New(env, double(value.count)));
            marker.Set("elementType", numeric_array_name(value.elem_type));
            md.Set(key, marker);
        } else {
            md.Set(key, value_to_js(env, value));
        }
    }
    out.Set("metadata", md);
    Napi::Array tensors = Napi::Array::New(env, f.tensors().size());
    uint32_t i = 0;
    for (const auto& t : f.tensors()) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", t.name);
        o.Set("type", tensor_type_name(t.type));
        o.Set("typeId", Napi::Number::New(env, double(uint32_t(t.type))));
        Napi::Array shape = Napi::Array::New(env, t.n_dims);
        for (uint32_t d = 0; d < t.n_dims; ++d) shape.Set(d, Napi::Number::New(env, double(t.ne[d])));
        o.Set("shape", shape);
        o.Set("offset", Napi::Number::New(env, double(f.data_offset() + t.offset)));
        o.Set("byteSize", Napi::Number::New(env, double(t.n_bytes)));
        tensors.Set(i++, o);
    }
    out.Set("tensors", tensors);
    return out;
}

// ---- Large string arrays as string tables -------------------------------------------------------
//
// A vocabulary is 150k+ strings (and as many BPE merges). As that many JS strings they cost the
// JS thread tens of milliseconds: creating them, and then V8's young-generation collections, which
// copy every surviving string (pauses of 5-25 ms). Instead each large array becomes a table:
// chunks of k_table_chunk elements, each one JS string of its elements (UTF-16, decoded here off
// the JS thread while the file loads) plus the offsets where they start. Chunks keep each call
// short: a fresh multi-megabyte allocation costs milliseconds of page faults by itself.

constexpr size_t k_table_chunk = 4096;  // elements per chunk (lib/gguf/string-table.ts: CHUNK)

struct string_table {
    struct chunk {
        std::u16string text;            // the chunk's elements, decoded, back to back
        std::vector<uint32_t> offsets;  // elements + 1: element j is text[offsets[j], offsets[j + 1])
    };
    std::vector<chunk> chunks;
    size_t fetched = 0;  // chunks handed to JS so far; the table is freed after the last
};
using string_tables = std::map<std::string, std::shared_ptr<string_table>, std::less<>>;

// Appends the UTF-16 form of UTF-8 `s` as V8 decodes it (WHATWG: each maximal invalid subpart,
// and a truncated sequence at the end, becomes one U+FFFD), so an element of the table equals
// the string Napi::String::New would make of it.
void append_utf16(std::u16string& out, std::string_view s) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const uint8_t b = p[i];
        if (b < 0x80) {
            out.push_back(char16_t(b));
            ++i;
            continue;
        }
        int need = 0;
        uint32_t cp = 0;
        uint8_t lo = 0x80, hi = 0xBF;  // the range of the first continuation byte
        if (b >= 0xC2 && b <= 0xDF) { need = 1; cp = b & 0x1F; }
        else if (b >= 0xE0 && b <= 0xEF) { need = 2; cp = b & 0x0F; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
        else if (b >= 0xF0 && b <= 0xF4) { need = 3; cp = b & 0x07; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
        else {  // a continuation byte or C0, C1, F5..FF: not a lead byte
            out.push_back(u'\uFFFD');
            ++i;
            continue;
        }
        size_t j = i + 1;
        bool ok = true;
        for (int k = 0; k < need; ++k, ++j) {
            const uint8_t lo_k = k == 0 ? lo : 0x80, hi_k = k == 0 ? hi : 0xBF;
            if (j >= n || p[j] < lo_k || p[j] > hi_k) { ok = false; break; }
            cp = (cp << 6) | (p[j] & 0x3F);
        }
        if (!ok) {  // the bytes before the bad one (at least the lead) are one maximal subpart
            out.push_back(u'\uFFFD');
            i = j;
            continue;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out.push_back(char16_t(0xD800 + (cp >> 10)));
            out.push_back(char16_t(0xDC00 + (cp & 0x3FF)));
        } else {
            out.push_back(char16_t(cp));
        }
        i = j;
    }
}

// Tables of every string array longer than `min_count` (on a worker thread, while loading).
std::shared_ptr<string_tables> build_string_tables(const gguf_file& f, size_t min_count) {
    auto tables = std::make_shared<string_tables>();
    for (const auto& [key, value] : f.metadata()) {
        if (value.type != gguf_type::array || value.elem_type != gguf_type::string || value.strings.size() <= min_count) continue;
        auto t = std::make_shared<string_table>();
        const size_t n = value.strings.size();
        t->chunks.resize((n + k_table_chunk - 1) / k_table_chunk);
        for (size_t c = 0; c < t->chunks.size(); ++c) {
            string_table::chunk& ch = t->chunks[c];
            const size_t begin = c * k_table_chunk, end = std::min(n, begin + k_table_chunk);
            ch.offsets.reserve(end - begin + 1);
            for (size_t i = begin; i < end; ++i) {
                ch.offsets.push_back(uint32_t(ch.text.size()));
                append_utf16(ch.text, value.strings[i]);  // a chunk of 4096 elements stays far below 4 G
            }
            ch.offsets.push_back(uint32_t(ch.text.size()));
        }
        tables->emplace(key, std::move(t));
    }
    return tables;
}

// String arrays of more than this many elements are deferred by gguf_to_js and fetched as tables.
constexpr size_t k_table_min_count = 1024;

// stringTableChunk(key, c) -> { text: string, offsets: Uint32Array } for chunk c of a deferred
// array; the table is freed once its last chunk has been handed over.
Napi::Value string_table_chunk_to_js(const Napi::CallbackInfo& cb, string_tables* tables) {
    Napi::Env env = cb.Env();
    if (cb.Length() < 2 || !cb[0].IsString() || !cb[1].IsNumber()) return throw_error(env, "ERR_INVALID_ARGUMENT", "stringTableChunk(key: string, chunk: number)");
    const std::string key = cb[0].As<Napi::String>();
    auto it = tables ? tables->find(key) : string_tables::iterator{};
    if (!tables || it == tables->end()) return throw_error(env, "ERR_INVALID_ARGUMENT", "stringTableChunk: '" + key + "' is not a deferred string array (or was fetched already)");
    string_table& t = *it->second;
    const int64_t c = cb[1].As<Napi::Number>().Int64Value();
    if (c < 0 || size_t(c) >= t.chunks.size()) return throw_error(env, "ERR_INVALID_ARGUMENT", "stringTableChunk: chunk " + std::to_string(c) + " is out of range");
    const string_table::chunk& ch = t.chunks[size_t(c)];
    Napi::Object out = Napi::Object::New(env);
    out.Set("text", Napi::String::New(env, ch.text.data(), ch.text.size()));
    out.Set("offsets", typed_array_copy<Napi::Uint32Array>(env, ch.offsets.data(), ch.offsets.size()));
    if (++t.fetched == t.chunks.size()) tables->erase(it);
    return out;
}

// ---- argument helpers ------------------------------------------------------------------------

bool need_args(const Napi::CallbackInfo& info, size_t n, const char* fn) {
    if (info.Length() < n) {
        throw_error(info.Env(), "ERR_INVALID_ARGUMENT", std::string(fn) + ": expected " + std::to_string(n) + " arguments");
        return false;
    }
    return true;
}

// ---- Model -----------------------------------------------------------------------------------

// A placement plan as the addon returns it (lib/placement.ts's NativePlacement).
Napi::Object plan_to_js(Napi::Env env, const placement_plan& p) {
    Napi::Object o = Napi::Object::New(env);
    auto num = [&](const char* key, double v) { o.Set(key, Napi::Number::New(env, v)); };
    num("budgetBytes", double(p.device_budget));
    num("deviceWeightBytes", double(p.device_weights));
    num("deviceKvBytes", double(p.device_kv));
    num("deviceScratchBytes", double(p.device_scratch));
    num("deviceExpertBytes", double(p.device_experts));
    num("hostWeightBytes", double(p.host_weights));
    num("hostExpertBytes", double(p.host_experts));
    num("expertCount", p.n_expert_total);
    num("deviceExpertCount", p.n_expert_slots);
    Napi::Array slots = Napi::Array::New(env, p.layer_slots.size());
    Napi::Array expert_bytes = Napi::Array::New(env, p.layer_expert_bytes.size());
    for (size_t i = 0; i < p.layer_slots.size(); ++i) {
        slots.Set(uint32_t(i), p.layer_slots[i]);
        expert_bytes.Set(uint32_t(i), Napi::Number::New(env, double(p.layer_expert_bytes[i])));
    }
    o.Set("layerDeviceExperts", slots);
    o.Set("layerExpertBytes", expert_bytes);
    o.Set("summary", describe(p));
    return o;
}

class model_handle : public Napi::ObjectWrap<model_handle> {
public:
    static Napi::Function define(Napi::Env env) {
        return DefineClass(env, "NativeModel", {
            InstanceMethod("info", &model_handle::info),
            InstanceMethod("gguf", &model_handle::gguf),
            InstanceMethod("placement", &model_handle::placement),
            InstanceMethod("ggufStringTableChunk", &model_handle::gguf_string_table_chunk),
            InstanceMethod("ggufArrayInto", &model_handle::gguf_array_into),
            InstanceMethod("dispose", &model_handle::dispose),
        });
    }
    explicit model_handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<model_handle>(info) {}

    std::shared_ptr<model> get(Napi::Env env) {
        if (!model_) throw_error(env, "ERR_DISPOSED", "model is disposed");
        return model_;
    }
    std::shared_ptr<model> model_;
    std::shared_ptr<string_tables> tables_;  // the file's large string arrays, until fetched

private:
    Napi::Value info(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto m = get(env);
        if (!m) return env.Undefined();
        const model_info mi = model_get_info(*m);
        Napi::Object o = Napi::Object::New(env);
        o.Set("architecture", mi.architecture);
        o.Set("blockCount", mi.n_layer);
        o.Set("embeddingLength", mi.n_embd);
        o.Set("headCount", mi.n_head);
        o.Set("headCountKv", mi.n_head_kv);
        o.Set("vocabSize", mi.n_vocab);
        o.Set("contextLength", mi.n_ctx_train);
        o.Set("expertCount", mi.n_expert);
        o.Set("expertUsedCount", mi.n_expert_used);
        o.Set("fileType", Napi::Number::New(env, double(mi.file_type)));
        o.Set("sizeBytes", Napi::Number::New(env, double(mi.size_bytes)));
        o.Set("parameterCount", Napi::Number::New(env, double(mi.n_params)));
        o.Set("activeParameterCount", Napi::Number::New(env, double(mi.n_params_active)));
        o.Set("threads", mi.n_threads);
        o.Set("threadsPinned", mi.threads_pinned);
        o.Set("cpuPath", mi.cpu_path);
        o.Set("backend", mi.backend);
        o.Set("backendName", mi.backend_name);
        if (!mi.gpu_note.empty()) o.Set("gpuNote", mi.gpu_note);
        if (mi.placed) o.Set("placement", plan_to_js(env, mi.placement));
        o.Set("weightMemory", mi.weights_copied ? "copied" : "mapped");
        o.Set("weightsArranged", double(mi.weights_arranged));
        return o;
    }
    // placement(budgetBytes, contextSize, kvType, batchSize (0: the session default), experts: 'auto' | 'cpu' | 'gpu'): where
    // the model's parts would go on a device with that much memory (runtime/placement.h).
    Napi::Value placement(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto m = get(env);
        if (!m) return env.Undefined();
        if (cb.Length() < 5 || !cb[0].IsNumber() || !cb[1].IsNumber() || !cb[2].IsString() || !cb[3].IsNumber() || !cb[4].IsString()) {
            return throw_error(env, "ERR_INVALID_ARGUMENT", "placement(budgetBytes, contextSize, kvType, batchSize, experts)");
        }
        placement_request r;
        r.device_budget = uint64_t(std::max(0.0, cb[0].As<Napi::Number>().DoubleValue()));
        r.n_ctx = cb[1].As<Napi::Number>().Int32Value();
        r.n_batch = cb[3].As<Napi::Number>().Int32Value();
        const std::string kv = cb[2].As<Napi::String>(), experts = cb[4].As<Napi::String>();
        const std::optional<tensor_type> kv_type = parse_kv_type(kv);
        if (!kv_type) return throw_error(env, "ERR_INVALID_ARGUMENT", "placement: kvType '" + kv + "' is not one of f32, f16, bf16, q8_0");
        r.kv_type = *kv_type;
        if (experts == "auto") r.experts = expert_placement::automatic;
        else if (experts == "cpu") r.experts = expert_placement::host;
        else if (experts == "gpu") r.experts = expert_placement::device;
        else return throw_error(env, "ERR_INVALID_ARGUMENT", "placement: experts '" + experts + "' is not one of auto, cpu, gpu");
        try {
            return plan_to_js(env, plan_placement(*m, r));
        } catch (const error& e) {
            return throw_error(env, error_code_name(e.code()), e.what());
        }
    }
    // gguf(maxInline?: number): header, metadata (long string arrays deferred) and tensors.
    Napi::Value gguf(const Napi::CallbackInfo& cb) {
        auto m = get(cb.Env());
        if (!m) return cb.Env().Undefined();
        const size_t max_inline = cb.Length() > 0 && cb[0].IsNumber() ? size_t(std::max<int64_t>(0, cb[0].As<Napi::Number>().Int64Value())) : SIZE_MAX;
        return gguf_to_js(cb.Env(), *m->file, max_inline);
    }
    Napi::Value gguf_array_into(const Napi::CallbackInfo& cb) {
        auto m = get(cb.Env());
        if (!m) return cb.Env().Undefined();
        return numeric_array_into_js(cb, *m->file);
    }
    Napi::Value gguf_string_table_chunk(const Napi::CallbackInfo& cb) {
        if (!get(cb.Env())) return cb.Env().Undefined();
        return string_table_chunk_to_js(cb, tables_.get());
    }
    Napi::Value dispose(const Napi::CallbackInfo& cb) {
        model_.reset();
        return cb.Env().Undefined();
    }
};

// ---- GGUF file (readGgufInfo) ------------------------------------------------------------------

class gguf_handle : public Napi::ObjectWrap<gguf_handle> {
public:
    static Napi::Function define(Napi::Env env) {
        return DefineClass(env, "NativeGguf", {
            InstanceMethod("info", &gguf_handle::info),
            InstanceMethod("stringTableChunk", &gguf_handle::string_table_chunk),
            InstanceMethod("arrayInto", &gguf_handle::array_into),
            InstanceMethod("close", &gguf_handle::close),
        });
    }
    explicit gguf_handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<gguf_handle>(info) {}
    std::shared_ptr<gguf_file> file_;
    std::shared_ptr<string_tables> tables_;

private:
    Napi::Value info(const Napi::CallbackInfo& cb) {
        if (!file_) return throw_error(cb.Env(), "ERR_DISPOSED", "GGUF file is closed");
        const size_t max_inline = cb.Length() > 0 && cb[0].IsNumber() ? size_t(std::max<int64_t>(0, cb[0].As<Napi::Number>().Int64Value())) : SIZE_MAX;
        return gguf_to_js(cb.Env(), *file_, max_inline);
    }
    Napi::Value array_into(const Napi::CallbackInfo& cb) {
        if (!file_) return throw_error(cb.Env(), "ERR_DISPOSED", "GGUF file is closed");
        return numeric_array_into_js(cb, *file_);
    }
    Napi::Value string_table_chunk(const Napi::CallbackInfo& cb) {
        if (!file_) return throw_error(cb.Env(), "ERR_DISPOSED", "GGUF file is closed");
        return string_table_chunk_to_js(cb, tables_.get());
    }
    Napi::Value close(const Napi::CallbackInfo& cb) {
        file_.reset();
        return cb.Env().Undefined();
    }
};

// ---- Session ---------------------------------------------------------------------------------

// Shared between the JS handle and in-flight workers, so disposing during work is safe.
struct session_state {
    std::unique_ptr<session> s;
    std::unique_ptr<sampler> smp;
    std::vector<float> last_logits;  // (n_vocab) the row step() sampled from, for resample()
    std::unique_ptr<imatrix_collector> imatrix;  // while collecting (imatrixStart .. imatrixTake)
    std::unique_ptr<expert_stats> routing_stats;  // while counting (expertStatsStart .. expertStatsTake)
    std::atomic<bool> abort{false};
    std::atomic<bool> busy{false};
};

struct evaluate_result {
    std::vector<float> logits;
    int32_t token = -1;
};

class session_handle : public Napi::ObjectWrap<session_handle> {
public:
    static Napi::Function define(Napi::Env env) {
        return DefineClass(env, "NativeSession", {
            InstanceMethod("evaluate", &session_handle::evaluate),
            InstanceMethod("step", &session_handle::step),
            InstanceMethod("resample", &session_handle::resample),
            InstanceMethod("setSampler", &session_handle::set_sampler),
            InstanceMethod("acceptTokens", &session_handle::accept_tokens),
            InstanceMethod("abort", &session_handle::abort),
            InstanceMethod("truncate", &session_handle::truncate),
            InstanceMethod("nPast", &session_handle::n_past),
            InstanceMethod("kvBytes", &session_handle::kv_bytes),
            InstanceMethod("workCounters", &session_handle::work_counters),
            InstanceMethod("imatrixStart", &session_handle::imatrix_start),
            InstanceMethod("imatrixTake", &session_handle::imatrix_take),
            InstanceMethod("expertStatsStart", &session_handle::expert_stats_start),
            InstanceMethod("expertStatsTake", &session_handle::expert_stats_take),
            InstanceMethod("dispose", &session_handle::dispose),
        });
    }
    explicit session_handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<session_handle>(info) {}
    std::shared_ptr<session_state> state_;

private:
    std::shared_ptr<session_state> get(Napi::Env env) {
        if (!state_) throw_error(env, "ERR_DISPOSED", "session is disposed");
        return state_;
    }
    // Claims the session for one async operation; a second concurrent one is an error.
    std::shared_ptr<session_state> claim(Napi::Env env) {
        auto st = get(env);
        if (!st) return nullptr;
        bool expected = false;
        if (!st->busy.compare_exchange_strong(expected, true)) {
            throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
            return nullptr;
        }
        st->abort.store(false);
        return st;
    }
    // The claim ends with the queued work, or now where the work could not be queued (queue).
    static Napi::Value unclaim_unless_queued(const std::shared_ptr<session_state>& st, Napi::Value promise) {
        if (promise.IsEmpty()) st->busy.store(false);
        return promise;
    }
    static bool tokens_arg(const Napi::CallbackInfo& cb, size_t i, std::vector<int32_t>& out) {
        if (!cb[i].IsTypedArray() || cb[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
            throw_error(cb.Env(), "ERR_INVALID_ARGUMENT", "tokens must be an Int32Array");
            return false;
        }
        Napi::Int32Array a = cb[i].As<Napi::Int32Array>();
        out.assign(a.Data(), a.Data() + a.ElementLength());
        return true;
    }

    // evaluate(tokens: Int32Array, mode: 0 none | 1 last | 2 all) -> Promise<Float32Array>
    Napi::Value evaluate(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        if (!need_args(cb, 2, "evaluate")) return env.Undefined();
        std::vector<int32_t> tokens;
        if (!tokens_arg(cb, 0, tokens)) return env.Undefined();
        if (!cb[1].IsNumber()) return throw_error(env, "ERR_INVALID_ARGUMENT", "evaluate: mode must be 0, 1 or 2");
        const int mode_i = cb[1].As<Napi::Number>().Int32Value();
        const logits_mode mode = mode_i == 2 ? logits_mode::all : mode_i == 1 ? logits_mode::last : logits_mode::none;
        auto st = claim(env);
        if (!st) return env.Undefined();
        return unclaim_unless_queued(st, queue<evaluate_result>(
            env,
            [st, tokens = std::move(tokens), mode] {
                struct release { session_state& s; ~release() { s.busy.store(false); } } r{*st};
                evaluate_result res;
                st->s->evaluate(tokens.data(), int(tokens.size()), mode, res.logits, &st->abort);
                if (st->smp) for (int32_t t : tokens) st->smp->accept(t);
                return res;
            },
            [](Napi::Env env, evaluate_result& res) -> Napi::Value {
                return typed_array_copy<Napi::Float32Array>(env, res.logits.data(), res.logits.size());
            }));
    }

    // A grammar mask argument: a Uint32Array of ceil(n_vocab / 32) words (bit t: token t allowed).
    static bool mask_arg(const Napi::CallbackInfo& cb, size_t i, int n_vocab, const char* fn, std::vector<uint32_t>& out) {
        if (!cb[i].IsTypedArray() || cb[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
            throw_error(cb.Env(), "ERR_INVALID_ARGUMENT", std::string(fn) + ": mask must be a Uint32Array");
            return false;
        }
        Napi::Uint32Array a = cb[i].As<Napi::Uint32Array>();
        const size_t words = (size_t(n_vocab) + 31) / 32;
        if (a.ElementLength() != words) {
            throw_error(cb.Env(), "ERR_INVALID_ARGUMENT", std::string(fn) + ": mask has " + std::to_string(a.ElementLength()) + " words, expected " + std::to_string(words));
            return false;
        }
        out.assign(a.Data(), a.Data() + words);
        return true;
    }

    // step(tokens: Int32Array, mask?: Uint32Array) -> Promise<number>: evaluates the tokens and
    // samples the next one with the session's sampler (setSampler first), among the tokens the
    // mask allows if one is given (-1 if it allows none). The sampled token is not yet evaluated.
    Napi::Value step(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        if (!need_args(cb, 1, "step")) return env.Undefined();
        std::vector<int32_t> tokens;
        if (!tokens_arg(cb, 0, tokens)) return env.Undefined();
        std::vector<uint32_t> mask;
        if (cb.Length() > 1 && !cb[1].IsUndefined() && !cb[1].IsNull()) {
            auto st0 = get(env);
            if (!st0) return env.Undefined();
            if (!mask_arg(cb, 1, st0->s->get_model().config.n_vocab, "step", mask)) return env.Undefined();
        }
        auto st = claim(env);
        if (!st) return env.Undefined();
        if (!st->smp) {
            st->busy.store(false);
            return throw_error(env, "ERR_INVALID_STATE", "step: no sampler set");
        }
        return unclaim_unless_queued(st, queue<evaluate_result>(
            env,
            [st, tokens = std::move(tokens), mask = std::move(mask)] {
                struct release { session_state& s; ~release() { s.busy.store(false); } } r{*st};
                evaluate_result res;
                st->s->evaluate(tokens.data(), int(tokens.size()), logits_mode::last, st->last_logits, &st->abort);
                for (int32_t t : tokens) st->smp->accept(t);
                res.token = st->smp->sample(st->last_logits.data(), int(st->last_logits.size()), mask.empty() ? nullptr : mask.data());
                return res;
            },
            [](Napi::Env env, evaluate_result& res) -> Napi::Value { return Napi::Number::New(env, res.token); }));
    }

    // resample(mask: Uint32Array) -> number: samples again from the row the last step() sampled
    // from, among the tokens the mask allows (-1 if none): a grammar rejected step()'s pick.
    Napi::Value resample(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        if (!need_args(cb, 1, "resample")) return env.Undefined();
        auto st = get(env);
        if (!st) return env.Undefined();
        if (st->busy.load()) return throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
        if (!st->smp || st->last_logits.empty()) return throw_error(env, "ERR_INVALID_STATE", "resample: no step() to sample again from");
        std::vector<uint32_t> mask;
        if (!mask_arg(cb, 0, int(st->last_logits.size()), "resample", mask)) return env.Undefined();
        return Napi::Number::New(env, st->smp->sample(st->last_logits.data(), int(st->last_logits.size()), mask.data()));
    }

    // setSampler({ temperature, topK, topP, minP, repeatPenalty, repeatLastN, seed })
    Napi::Value set_sampler(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto st = get(env);
        if (!st) return env.Undefined();
        if (st->busy.load()) return throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
        if (!cb[0].IsObject()) return throw_error(env, "ERR_INVALID_ARGUMENT", "setSampler: expected an options object");
        Napi::Object o = cb[0].As<Napi::Object>();
        sampler_params p;
        auto num = [&](const char* k, double fallback) { Napi::Value v = o.Get(k); return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback; };
        p.temperature = float(num("temperature", p.temperature));
        p.top_k = int(num("topK", p.top_k));
        p.top_p = float(num("topP", p.top_p));
        p.min_p = float(num("minP", p.min_p));
        p.repeat_penalty = float(num("repeatPenalty", p.repeat_penalty));
        p.repeat_last_n = int(num("repeatLastN", p.repeat_last_n));
        p.seed = uint64_t(num("seed", 0));
        st->smp = std::make_unique<sampler>(p);
        return env.Undefined();
    }

    // acceptTokens(tokens): records tokens (e.g. an already cached prompt) for the repeat penalty.
    Napi::Value accept_tokens(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto st = get(env);
        if (!st) return env.Undefined();
        std::vector<int32_t> tokens;
        if (!tokens_arg(cb, 0, tokens)) return env.Undefined();
        if (st->busy.load()) return throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
        if (st->smp) for (int32_t t : tokens) st->smp->accept(t);
        return env.Undefined();
    }

    Napi::Value abort(const Napi::CallbackInfo& cb) {
        if (state_) state_->abort.store(true);
        return cb.Env().Undefined();
    }
    Napi::Value truncate(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto st = get(env);
        if (!st) return env.Undefined();
        if (st->busy.load()) return throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
        if (!cb[0].IsNumber()) return throw_error(env, "ERR_INVALID_ARGUMENT", "truncate: n must be a number");
        st->s->truncate(cb[0].As<Napi::Number>().Int32Value());
        return env.Undefined();
    }
    Napi::Value n_past(const Napi::CallbackInfo& cb) {
        auto st = get(cb.Env());
        if (!st) return cb.Env().Undefined();
        return Napi::Number::New(cb.Env(), st->s->n_past());
    }
    Napi::Value kv_bytes(const Napi::CallbackInfo& cb) {
        auto st = get(cb.Env());
        if (!st) return cb.Env().Undefined();
        return Napi::Number::New(cb.Env(), double(st->s->kv_bytes()));
    }
    // workCounters() -> { layerSteps, abortedEvaluations, lastAbortStepsDone, lastAbortStepsPlanned, expertHits, expertMisses, expertLoads }:
    // atomics, safe to read while an evaluation runs on a worker thread.
    Napi::Value work_counters(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto st = get(env);
        if (!st) return env.Undefined();
        const session::work_counters w = st->s->counters();
        Napi::Object o = Napi::Object::New(env);
        o.Set("layerSteps", double(w.layer_steps));
        o.Set("abortedEvaluations", double(w.aborted_evaluations));
        o.Set("lastAbortStepsDone", double(w.last_abort_steps_done));
        o.Set("lastAbortStepsPlanned", double(w.last_abort_steps_planned));
        o.Set("expertHits", double(w.expert_hits));
        o.Set("expertMisses", double(w.expert_misses));
        o.Set("expertLoads", double(w.expert_loads));
        return o;
    }
    // imatrixStart(): later evaluations accumulate an importance matrix (runtime/imatrix.h).
    Napi::Value imatrix_start(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto st = get(env);
        if (!st) return env.Undefined();
        if (st->busy.load()) return throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
        if (st->routing_stats) return throw_error(env, "ERR_INVALID_STATE", "imatrixStart: the session is counting expert selections");
        st->imatrix = std::make_unique<imatrix_collector>(*st->s->get_model().file);
        st->s->set_observer(st->imatrix.get());
        return env.Undefined();
    }
    // imatrixTake() -> [{ name, sums: Float32Array (n_mat x ne0), counts: Float64Array (n_mat or 1) }]
    // in name order, and stops collecting.
    Napi::Value imatrix_take(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto st = get(env);
        if (!st) return env.Undefined();
        if (st->busy.load()) return throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
        if (!st->imatrix) return throw_error(env, "ERR_INVALID_STATE", "imatrixTake: imatrixStart was not called");
        st->s->set_observer(nullptr);
        std::unique_ptr<imatrix_collector> c = std::move(st->imatrix);
        Napi::Array out = Napi::Array::New(env, c->entries().size());
        uint32_t i = 0;
        for (const auto& [name, e] : c->entries()) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("name", name);
            o.Set("sums", typed_array_copy<Napi::Float32Array>(env, e.sums.data(), e.sums.size()));
            o.Set("counts", typed_array_copy<Napi::Float64Array>(env, e.counts.data(), e.counts.size()));
            out.Set(i++, o);
        }
        return out;
    }
    // expertStatsStart(slotsPerLayer: Int32Array | null): later evaluations count each MoE layer's
    // expert selections and, with slots, simulate a hot-expert cache of that placement
    // (runtime/expert_stats.h).
    Napi::Value expert_stats_start(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto st = get(env);
        if (!st) return env.Undefined();
        if (st->busy.load()) return throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
        if (st->imatrix) return throw_error(env, "ERR_INVALID_STATE", "expertStatsStart: the session is collecting an importance matrix");
        const model_config& c = st->s->get_model().config;
        std::vector<int> slots;
        if (cb.Length() > 0 && cb[0].IsTypedArray()) {
            Napi::Int32Array a = cb[0].As<Napi::Int32Array>();
            slots.assign(a.Data(), a.Data() + a.ElementLength());
        }
        try {
            st->routing_stats = std::make_unique<expert_stats>(c.n_layer, c.n_expert, std::move(slots));
        } catch (const error& e) {
            return throw_error(env, error_code_name(e.code()), e.what());
        }
        st->s->set_observer(st->routing_stats.get());
        return env.Undefined();
    }
    // expertStatsTake() -> { tokens, selections: Float64Array[] (per layer, per expert), hits,
    // misses, loads }, and stops collecting.
    Napi::Value expert_stats_take(const Napi::CallbackInfo& cb) {
        Napi::Env env = cb.Env();
        auto st = get(env);
        if (!st) return env.Undefined();
        if (st->busy.load()) return throw_error(env, "ERR_BUSY", "session is busy with another evaluation");
        if (!st->routing_stats) return throw_error(env, "ERR_INVALID_STATE", "expertStatsTake: expertStatsStart was not called");
        st->s->set_observer(nullptr);
        std::unique_ptr<expert_stats> x = std::move(st->routing_stats);
        Napi::Object o = Napi::Object::New(env);
        o.Set("tokens", Napi::Number::New(env, double(x->tokens())));
        Napi::Array layers = Napi::Array::New(env, size_t(x->n_layer()));
        for (int l = 0; l < x->n_layer(); ++l) {
            const std::vector<uint64_t>& counts = x->selections(l);
            layers.Set(uint32_t(l), typed_array_copy<Napi::Float64Array>(env, counts.data(), counts.size()));
        }
        o.Set("selections", layers);
        o.Set("hits", Napi::Number::New(env, double(x->hits())));
        o.Set("misses", Napi::Number::New(env, double(x->misses())));
        o.Set("loads", Napi::Number::New(env, double(x->loads())));
        return o;
    }
    // Drops the handle's reference; an in-flight worker keeps the state alive until it finishes.
    Napi::Value dispose(const Napi::CallbackInfo& cb) {
        if (state_) state_->abort.store(true);
        state_.reset();
        return cb.Env().Undefined();
    }
};

// ---- module functions --------------------------------------------------------------------------

// The native object behind a handle just made by `ctor.New({})`, or nullptr when no object was made:
// a JS exception is pending, or the environment is being torn down (worker.terminate() landing
// during the call or before a completion ran). Unwrap() of that empty object would hand node-addon-api
// a null env, which it turns into a fatal error.
template <class Handle>
Handle* unwrap_new(const Napi::Object& obj) {
    if (obj.IsEmpty()) return nullptr;
    return Handle::Unwrap(obj);
}

struct instance_data {
    Napi::FunctionReference model_ctor;
    Napi::FunctionReference session_ctor;
    Napi::FunctionReference gguf_ctor;
};

// openGguf(path) -> Promise<NativeGguf>: parsed off the JS thread; converted by the caller.
Napi::Value open_gguf(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    if (!need_args(cb, 1, "openGguf")) return env.Undefined();
    if (!cb[0].IsString()) return throw_error(env, "ERR_INVALID_ARGUMENT", "openGguf: path must be a string");
    std::string path = cb[0].As<Napi::String>();
    auto* data = env.GetInstanceData<instance_data>();
    using opened = std::pair<std::shared_ptr<gguf_file>, std::shared_ptr<string_tables>>;
    return queue<opened>(
        env,
        [path] {
            std::shared_ptr<gguf_file> f(gguf_file::open(path));
            return opened{f, build_string_tables(*f, k_table_min_count)};
        },
        [data](Napi::Env env, opened& r) -> Napi::Value {
            Napi::Object obj = data->gguf_ctor.New({});
            gguf_handle* h = unwrap_new<gguf_handle>(obj);
            if (!h) return env.Undefined();
            h->file_ = r.first;
            h->tables_ = r.second;
            return obj;
        });
}

// loadModel(path, { threads, pinThreads, allowLargerThanRam, prefetch, weightMemory, gpu, gpuDevice, gpuPlacement }, onProgress?: (fraction) => void)
//   -> { promise: Promise<NativeModel>, abort() }
Napi::Value load_model(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    if (!need_args(cb, 2, "loadModel")) return env.Undefined();
    if (!cb[0].IsString()) return throw_error(env, "ERR_INVALID_ARGUMENT", "loadModel: path must be a string");
    if (!cb[1].IsObject()) return throw_error(env, "ERR_INVALID_ARGUMENT", "loadModel: options must be an object");
    std::string path = cb[0].As<Napi::String>();
    Napi::Object options = cb[1].As<Napi::Object>();
    if (!options.Get("threads").IsNumber()) return throw_error(env, "ERR_INVALID_ARGUMENT", "loadModel: threads must be a number");
    const int threads = options.Get("threads").As<Napi::Number>().Int32Value();
    const bool allow_larger_than_ram = options.Get("allowLargerThanRam").ToBoolean().Value();
    // gpu: 'auto' | 'cuda' | 'off' (lib/model.ts validates; anything else is the CPU).
    using gpu_mode = model_load_params::gpu_mode;
    const std::string gpu_opt = options.Get("gpu").IsString() ? options.Get("gpu").As<Napi::String>().Utf8Value() : "off";
    const gpu_mode gpu = gpu_opt == "auto" ? gpu_mode::auto_detect : gpu_opt == "cuda" ? gpu_mode::cuda : gpu_mode::off;
    const int gpu_device = options.Get("gpuDevice").IsNumber() ? options.Get("gpuDevice").As<Napi::Number>().Int32Value() : 0;
    // gpuPlacement: { budget (0: the device's free memory less a margin), contextSize, kvType, batchSize, experts, expertCache } (lib/model.ts validates).
    placement_request placement;
    if (options.Get("gpuPlacement").IsObject()) {
        Napi::Object g = options.Get("gpuPlacement").As<Napi::Object>();
        auto number = [&](const char* key, double fallback) { return g.Get(key).IsNumber() ? g.Get(key).As<Napi::Number>().DoubleValue() : fallback; };
        placement.device_budget = uint64_t(std::max(0.0, number("budget", 0)));
        placement.n_ctx = int(number("contextSize", 4096));
        placement.n_batch = int(number("batchSize", 0));
        if (g.Get("kvType").IsString()) {
            if (const std::optional<tensor_type> kv = parse_kv_type(g.Get("kvType").As<Napi::String>())) placement.kv_type = *kv;
        }
        const std::string experts = g.Get("experts").IsString() ? g.Get("experts").As<Napi::String>().Utf8Value() : "auto";
        placement.experts = experts == "cpu" ? expert_placement::host : experts == "gpu" ? expert_placement::device : expert_placement::automatic;
        placement.expert_cache = !g.Get("expertCache").IsBoolean() || g.Get("expertCache").As<Napi::Boolean>().Value();
    }
    const bool prefetch = !options.Get("prefetch").IsBoolean() || options.Get("prefetch").As<Napi::Boolean>().Value();
    const bool pin_threads = options.Get("pinThreads").ToBoolean().Value();
    // weightMemory: 'auto' | 'map' | 'copy' (lib/model.ts validates; anything else is 'auto').
    using weight_memory = model_load_params::weight_memory;
    const std::string weights_opt = options.Get("weightMemory").IsString() ? options.Get("weightMemory").As<Napi::String>().Utf8Value() : "auto";
    const weight_memory weights = weights_opt == "map" ? weight_memory::map : weights_opt == "copy" ? weight_memory::copy : weight_memory::auto_detect;
    std::shared_ptr<Napi::ThreadSafeFunction> progress;
    if (cb.Length() > 2 && cb[2].IsFunction()) {
        Napi::ThreadSafeFunction f = Napi::ThreadSafeFunction::New(env, cb[2].As<Napi::Function>(), "moerun-progress", 0, 1);
        // Not made (the env is going away): no progress calls. Releasing a null one would abort.
        if (napi_threadsafe_function(f) != nullptr) {
            progress = std::shared_ptr<Napi::ThreadSafeFunction>(new Napi::ThreadSafeFunction(f), [](Napi::ThreadSafeFunction* p) { p->Release(); delete p; });
        }
    }
    auto abort = std::make_shared<std::atomic<bool>>(false);
    auto* data = env.GetInstanceData<instance_data>();
    using loaded = std::pair<std::shared_ptr<model>, std::shared_ptr<string_tables>>;
    Napi::Value promise = queue<loaded>(
        env,
        [path, threads, pin_threads, gpu, gpu_device, placement, allow_larger_than_ram, prefetch, weights, progress, abort] {
            model_load_params p;
            p.weights = weights;
            p.n_threads = threads;
            p.pin_threads = pin_threads;
            p.prefetch = prefetch;
            p.allow_larger_than_ram = allow_larger_than_ram;
            p.gpu = gpu;
            p.gpu_device = gpu_device;
            p.gpu_placement = placement;
            p.abort = abort.get();
            double last = -1;
            if (progress) {
                p.on_progress = [progress, &last](double f) {
                    if (f - last < 0.01 && f < 1.0) return;  // at most ~100 callbacks
                    last = f;
                    progress->NonBlockingCall([f](Napi::Env env, Napi::Function fn) { fn.Call({Napi::Number::New(env, f)}); });
                };
            }
            std::shared_ptr<model> m = model_load(path, p);
            return loaded{m, build_string_tables(*m->file, k_table_min_count)};
        },
        [data](Napi::Env env, loaded& r) -> Napi::Value {
            Napi::Object obj = data->model_ctor.New({});
            model_handle* h = unwrap_new<model_handle>(obj);
            if (!h) return env.Undefined();
            h->model_ = r.first;
            h->tables_ = r.second;
            return obj;
        });
    Napi::Object out = Napi::Object::New(env);
    out.Set("promise", promise);
    out.Set("abort", Napi::Function::New(env, [abort](const Napi::CallbackInfo& cb) {
        abort->store(true);
        return cb.Env().Undefined();
    }));
    return out;
}

// createSession(model, contextSize, kvType: 'f32'|'f16'|'bf16'|'q8_0') -> NativeSession
Napi::Value create_session(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    if (!need_args(cb, 3, "createSession")) return env.Undefined();
    auto* data = env.GetInstanceData<instance_data>();
    if (!cb[0].IsObject() || !cb[0].As<Napi::Object>().InstanceOf(data->model_ctor.Value())) {
        return throw_error(env, "ERR_INVALID_ARGUMENT", "createSession: expected a NativeModel");
    }
    auto m = model_handle::Unwrap(cb[0].As<Napi::Object>())->get(env);
    if (!m) return env.Undefined();
    session_params p;
    if (!cb[1].IsNumber() || !cb[2].IsString()) {
        return throw_error(env, "ERR_INVALID_ARGUMENT", "createSession(model, contextSize: number, kvType: string, batchSize?: number)");
    }
    const double n_ctx = cb[1].As<Napi::Number>().DoubleValue();
    if (!(n_ctx >= 1 && n_ctx <= double(INT32_MAX)) || n_ctx != std::floor(n_ctx)) {
        return throw_error(env, "ERR_INVALID_ARGUMENT", format("createSession: context size %.17g is not an integer in [1, %d]", n_ctx, INT32_MAX));
    }
    p.n_ctx = int(n_ctx);
    const std::string kv = cb[2].As<Napi::String>();
    const std::optional<tensor_type> kv_type = parse_kv_type(kv);
    if (!kv_type) return throw_error(env, "ERR_INVALID_ARGUMENT", "createSession: kvType '" + kv + "' is not one of f32, f16, bf16, q8_0");
    p.kv_type = *kv_type;
    if (cb.Length() > 3 && !cb[3].IsUndefined()) {  // batchSize: tokens per forward chunk
        const double n_batch = cb[3].IsNumber() ? cb[3].As<Napi::Number>().DoubleValue() : -1;
        if (!(n_batch >= 1 && n_batch <= double(INT32_MAX)) || n_batch != std::floor(n_batch)) {
            return throw_error(env, "ERR_INVALID_ARGUMENT", "createSession: batchSize must be a positive integer");
        }
        p.n_batch = int(n_batch);
    }
    auto st = std::make_shared<session_state>();
    try {
        st->s = std::make_unique<session>(m, p);
    } catch (const error& e) {
        return throw_error(env, error_code_name(e.code()), e.what());
    } catch (const std::bad_alloc&) {
        return throw_error(env, "ERR_OUT_OF_MEMORY", "createSession: out of memory");
    }
    Napi::Object obj = data->session_ctor.New({});
    session_handle* h = unwrap_new<session_handle>(obj);
    if (!h) return env.Undefined();
    h->state_ = st;
    return obj;
}

// CPU time of the calling (JS) thread, in milliseconds: what a slice of JS work cost the thread,
// independent of how long the OS kept it off a core (lib/slices.ts). NaN where unavailable.
Napi::Value thread_cpu_ms(const Napi::CallbackInfo& cb) {
    double ms = std::numeric_limits<double>::quiet_NaN();
#if defined(CLOCK_THREAD_CPUTIME_ID)
    timespec ts{};
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) ms = double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
#endif
    return Napi::Number::New(cb.Env(), ms);
}

// gpuInfo() -> { library, usable, reason, driverVersion, runtimeVersion, devices: [{ index, name,
// totalMemory, freeMemory, computeCapability, supported }] }: the CUDA library and its devices.
// Opens libmoerun_cuda.so on the first call (milliseconds; no device context is created).
Napi::Value gpu_info(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    const gpu_probe probe = cuda_probe();
    Napi::Object o = Napi::Object::New(env);
    o.Set("library", probe.library.empty() ? env.Null() : Napi::String::New(env, probe.library));
    o.Set("usable", probe.usable);
    o.Set("reason", probe.reason);
    o.Set("driverVersion", probe.driver_version);
    o.Set("runtimeVersion", probe.runtime_version);
    Napi::Array devices = Napi::Array::New(env, probe.devices.size());
    for (size_t i = 0; i < probe.devices.size(); ++i) {
        const gpu_device_info& d = probe.devices[i];
        Napi::Object dev = Napi::Object::New(env);
        dev.Set("index", d.index);
        dev.Set("name", d.name);
        dev.Set("totalMemory", double(d.total_bytes));
        dev.Set("freeMemory", double(d.free_bytes));
        dev.Set("computeCapability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor));
        dev.Set("supported", d.supported);
        devices.Set(uint32_t(i), dev);
    }
    o.Set("devices", devices);
    return o;
}

Napi::Value cpu_info(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    const cpu_features& f = cpu_detect();
    Napi::Object o = Napi::Object::New(env);
    Napi::Array paths = Napi::Array::New(env);
    uint32_t i = 0;
    for (cpu_path p : k_cpu_paths) {
        if (cpu_path_supported(p)) paths.Set(i++, cpu_path_name(p));
    }
    o.Set("supportedPaths", paths);
    o.Set("physicalCores", physical_core_count());
    Napi::Object feats = Napi::Object::New(env);
    feats.Set("avx2", f.avx2); feats.Set("fma", f.fma); feats.Set("f16c", f.f16c);
    feats.Set("avx512f", f.avx512f); feats.Set("avx512bw", f.avx512bw); feats.Set("avx512vl", f.avx512vl);
    feats.Set("avx512vnni", f.avx512vnni); feats.Set("avx512bf16", f.avx512bf16);
    feats.Set("amxTile", f.amx_tile); feats.Set("amxInt8", f.amx_int8); feats.Set("amxBf16", f.amx_bf16);
    feats.Set("neon", f.neon); feats.Set("dotprod", f.dotprod); feats.Set("i8mm", f.i8mm);
    o.Set("features", feats);
    try {
        o.Set("activePath", cpu_path_name(cpu_active_path()));
    } catch (const error& e) {
        o.Set("activePath", env.Null());
        o.Set("error", e.what());
    }
    return o;
}

// quantize(type, src: Float32Array, rowLength, threads, importance?: Float32Array,
//          rowsPerMatrix?: number, firstRow?: number) -> Promise<Uint8Array>
// importance: the tensor's importance matrix (cpu/quantize.h row_importance); src holds its rows
// firstRow.. .
Napi::Value quantize(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    if (!need_args(cb, 4, "quantize")) return env.Undefined();
    const bool has_importance = cb.Length() > 4 && !cb[4].IsUndefined() && !cb[4].IsNull();
    const auto is_f32 = [&](size_t i) { return cb[i].IsTypedArray() && cb[i].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array; };
    if (!cb[0].IsString() || !is_f32(1) || !cb[2].IsNumber() || !cb[3].IsNumber() ||
        (has_importance && (!is_f32(4) || cb.Length() < 7 || !cb[5].IsNumber() || !cb[6].IsNumber()))) {
        return throw_error(env, "ERR_INVALID_ARGUMENT",
                           "quantize(type: string, src: Float32Array, rowLength: number, threads: number[, importance: Float32Array, rowsPerMatrix: number, firstRow: number])");
    }
    const std::string type = cb[0].As<Napi::String>();
    Napi::Float32Array src = cb[1].As<Napi::Float32Array>();
    const int64_t row_len = cb[2].As<Napi::Number>().Int64Value();
    const int threads = cb[3].As<Napi::Number>().Int32Value();
    if (row_len <= 0 || src.ElementLength() % size_t(row_len) != 0) {
        return throw_error(env, "ERR_INVALID_ARGUMENT", "quantize: the source length is not a multiple of rowLength");
    }
    // Copy the inputs so the worker never touches a JS-owned buffer.
    auto data = std::make_shared<std::vector<float>>(src.Data(), src.Data() + src.ElementLength());
    auto importance = std::make_shared<std::vector<float>>();
    row_importance ri;
    if (has_importance) {
        Napi::Float32Array imp = cb[4].As<Napi::Float32Array>();
        importance->assign(imp.Data(), imp.Data() + imp.ElementLength());
        ri.n_values = int64_t(importance->size());
        ri.rows_per_matrix = cb[5].As<Napi::Number>().Int64Value();
        ri.first_row = cb[6].As<Napi::Number>().Int64Value();
    }
    return queue<std::vector<uint8_t>>(
        env,
        [type, data, importance, ri, row_len, threads, has_importance]() mutable {
            ri.values = importance->data();
            return quantize_rows(tensor_type_from_name(type.c_str()), data->data(), int64_t(data->size()) / row_len, row_len, threads,
                                 has_importance ? &ri : nullptr);
        },
        [](Napi::Env env, std::vector<uint8_t>& out) -> Napi::Value {
            return typed_array_copy<Napi::Uint8Array>(env, out.data(), out.size());
        });
}

// dequantize(type, src: Uint8Array, rows, rowLength, threads) -> Promise<Float32Array>
Napi::Value dequantize(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    if (!need_args(cb, 5, "dequantize")) return env.Undefined();
    if (!cb[0].IsString() || !cb[1].IsTypedArray() || cb[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !cb[2].IsNumber() || !cb[3].IsNumber() || !cb[4].IsNumber()) {
        return throw_error(env, "ERR_INVALID_ARGUMENT", "dequantize(type: string, src: Uint8Array, rows: number, rowLength: number, threads: number)");
    }
    const std::string type = cb[0].As<Napi::String>();
    Napi::Uint8Array src = cb[1].As<Napi::Uint8Array>();
    auto data = std::make_shared<std::vector<uint8_t>>(src.Data(), src.Data() + src.ByteLength());
    const int64_t rows = cb[2].As<Napi::Number>().Int64Value(), row_len = cb[3].As<Napi::Number>().Int64Value();
    const int threads = cb[4].As<Napi::Number>().Int32Value();
    return queue<std::vector<float>>(
        env,
        [type, data, rows, row_len, threads] {
            return dequantize_rows(tensor_type_from_name(type.c_str()), data->data(), data->size(), rows, row_len, threads);
        },
        [](Napi::Env env, std::vector<float>& out) -> Napi::Value {
            return typed_array_copy<Napi::Float32Array>(env, out.data(), out.size());
        });
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
    auto* data = new instance_data();
    data->model_ctor = Napi::Persistent(model_handle::define(env));
    data->session_ctor = Napi::Persistent(session_handle::define(env));
    data->gguf_ctor = Napi::Persistent(gguf_handle::define(env));
    env.SetInstanceData(data);  // freed with the environment (worker threads, reloads)
    exports.Set("openGguf", Napi::Function::New(env, open_gguf));
    exports.Set("loadModel", Napi::Function::New(env, load_model));
    exports.Set("createSession", Napi::Function::New(env, create_session));
    exports.Set("cpuInfo", Napi::Function::New(env, cpu_info));
    exports.Set("gpuInfo", Napi::Function::New(env, gpu_info));
    exports.Set("threadCpuMs", Napi::Function::New(env, thread_cpu_ms));
    exports.Set("quantize", Napi::Function::New(env, quantize));
    exports.Set("dequantize", Napi::Function::New(env, dequantize));
    return exports;
}

}  // namespace
}  // namespace moerun::addon

static Napi::Object moerun_addon_init(Napi::Env env, Napi::Object exports) { return moerun::addon::init(env, exports); }
NODE_API_MODULE(moerun, moerun_addon_init)
