//! Tells the images' build scripts where the kernel's linker script is: the `links` metadata
//! `linker_script` reaches each direct dependent as `DEP_BULKHEAD_GUEST_KERNEL_LINKER_SCRIPT`.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:linker_script={dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
}
