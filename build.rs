//! GPU builds: llama.cpp and whisper.cpp share the static ggml that scripts/ggml.sh builds
//! (see .cargo/config.toml). With `system-ggml-static` the sys crates link ggml's core and
//! CPU libraries only, so a GPU backend built into that ggml (scripts/ggml.sh -DGGML_CUDA=ON
//! or -DGGML_VULKAN=ON) is linked here. CPU builds need nothing from this script.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for (feature, lib) in [("CARGO_FEATURE_CUDA", "ggml-cuda"), ("CARGO_FEATURE_VULKAN", "ggml-vulkan")] {
        if std::env::var_os(feature).is_some() {
            println!("cargo:rustc-link-lib=static={lib}");
        }
    }
}
