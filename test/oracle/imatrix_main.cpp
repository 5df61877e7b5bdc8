// llama.cpp's own llama-imatrix (tools/imatrix/imatrix.cpp from the source node-llama-cpp bundles,
// compiled unchanged with its main renamed imatrix_main) linked against node-llama-cpp's prebuilt
// libllama, libllama-common and libggml: this file is only the entry point. The prebuilt ggml
// loads its CPU backend dynamically, which the tool itself does not do (llama.cpp's own builds link
// it in), so the backends in BACKEND_DIR are loaded first.
#include "ggml-backend.h"

int imatrix_main(int argc, char ** argv);

int main(int argc, char ** argv) {
    ggml_backend_load_all_from_path(BACKEND_DIR);
    return imatrix_main(argc, argv);
}
