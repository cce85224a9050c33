//! What every process pays before it does anything: the libraries it loads.

use crate::support::rhaiflow;

// Linked to libgcc_s.so.1 (Rust's unwinder), every start loaded it and ran its constructor,
// which asks the CPU what it supports: ~0.1 ms of each start on a virtual machine, where
// CPUID is slow. build.rs links the unwinder into the binary instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_loads_no_library_but_the_c_library() {
    // The loader lists what it loaded and stops, as `ldd` has it do.
    let out = rhaiflow().arg("--version").env("LD_TRACE_LOADED_OBJECTS", "1").output().unwrap();
    let loaded = String::from_utf8_lossy(&out.stdout);
    assert!(loaded.contains("libc.so.6"), "{loaded}");
    assert!(!loaded.contains("libgcc_s"), "{loaded}");
}
