//! Links the `hostile` image as a freestanding static ELF with the kernel's linker script
//! (`guests/kernel/linker.ld`, named by `bulkhead-guest-kernel`'s `links` metadata). The
//! arguments go to binaries only, so the library's host unit tests link normally.

fn main() {
    let script = std::env::var("DEP_BULKHEAD_GUEST_KERNEL_LINKER_SCRIPT")
        .expect("bulkhead-guest-kernel's build script names its linker script");
    for arg in [
        format!("-T{script}"),
        "-nostartfiles".into(),
        "-nostdlib".into(),
        "-static".into(),
        "-Wl,--build-id=none".into(),
        "-Wl,-z,noexecstack".into(),
        "-Wl,-z,max-page-size=4096".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-env-changed=DEP_BULKHEAD_GUEST_KERNEL_LINKER_SCRIPT");
}
