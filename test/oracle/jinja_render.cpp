// Oracle for moerun's chat-template engine: renders templates with llama.cpp's own Jinja engine
// (common/jinja in the llama.cpp source that node-llama-cpp bundles), built at test time against
// that source. It is run as a reference, never linked into moerun.
//
// Usage: jinja_render JOBS.json
//   JOBS.json: [{ "template": string, "context": object, "time": unix seconds }, ...]
// Prints a JSON array, one entry per job: { "text": string } or { "error": string }.
// Time zone: strftime_now uses localtime(), so run it with TZ=UTC.
#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "jinja/runtime.h"
#include "jinja/value.h"
#include "json.h"

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

int main(int argc, char ** argv) {
    if (argc != 2) {
        std::cerr << "usage: jinja_render JOBS.json\n";
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    const common_json jobs = common_json::parse(buf.str());

    common_json results = common_json::array();
    for (size_t i = 0; i < jobs.size(); i++) {
        const common_json & job = jobs[i];
        common_json result = common_json::object();
        try {
            const std::string source = job["template"].get<std::string>();
            jinja::lexer lexer;
            const jinja::program prog = jinja::parse_from_tokens(lexer.tokenize(source));
            jinja::context ctx(source);
            ctx.current_time = static_cast<std::time_t>(job["time"].get<int64_t>());
            jinja::global_from_json(ctx, job["context"], false);
            jinja::runtime runtime(ctx);
            const jinja::value out = runtime.execute(prog);
            result["text"] = jinja::runtime::gather_string_parts(out)->as_string().str();
        } catch (const std::exception & e) {
            result["error"] = std::string(e.what());
        }
        results.push_back(result);
    }
    std::cout << results.dump_safe() << "\n";
    return 0;
}

// common/json.cpp asserts through GGML_ASSERT; the driver links no ggml, so it provides the abort.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
extern "C" void ggml_abort(const char * file, int line, const char * fmt, ...) {
    std::fprintf(stderr, "%s:%d: ", file, line);
    va_list args;
    va_start(args, fmt);
    std::vfprintf(stderr, fmt, args);
    va_end(args);
    std::fputc('\n', stderr);
    std::abort();
}
