//! The `hearth` binary: all logic lives in the library; this only runs the CLI.

fn main() -> std::process::ExitCode {
    // Nothing leaves the box: ONNX Runtime's PyPI build (text to speech) carries Microsoft's
    // 1DS telemetry uploader, which this variable switches off before the library is loaded
    // (the environment is also built with telemetry disabled). Set here, while the process
    // has one thread.
    std::env::set_var("ORT_DISABLE_TELEMETRY", "1");
    hearth::cli::main()
}
