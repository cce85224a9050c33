//! Links the unwinder into the binary (GCC's `libgcc_eh.a`) in place of the shared
//! `libgcc_s.so.1`, as `gcc -static-libgcc` does: Rust's standard library asks for `-lgcc_s`
//! by name, and a linker script of that name found first makes it the static archive. Every
//! process then starts without loading one more library, whose constructor asks the CPU what
//! it supports (CPUID, which a virtual machine answers slowly): 0.1 ms of each start
//! (docs/PERFORMANCE.md). Only on Linux with glibc, where Rust links `libgcc_s`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !gnu_linux {
        return;
    }
    let folder = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("static-libgcc");
    std::fs::create_dir_all(&folder).expect("OUT_DIR is writable");
    std::fs::write(folder.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search=native={}", folder.display());
}
