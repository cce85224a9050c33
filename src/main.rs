//! The `rhaiflow` command: everything lives in the library; this maps it to an exit code.

fn main() {
    rhaiflow::exit(rhaiflow::main());
}
