//! Links the `rt-demo` image as a freestanding static ELF at 2 MiB (`linker.ld`). The
//! arguments go to binaries only, so the library's host unit tests link normally.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    for arg in [
        format!("-T{dir}/linker.ld"),
        "-nostartfiles".into(),
        "-nostdlib".into(),
        "-static".into(),
        "-Wl,--build-id=none".into(),
        "-Wl,-z,noexecstack".into(),
        "-Wl,-z,max-page-size=4096".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=linker.ld");
}
