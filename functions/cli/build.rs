// `include_dir!` cannot tell cargo which files it read on stable Rust, so rebuild whenever
// anything in the bundled example site changes.
fn main() {
    println!("cargo:rerun-if-changed=example-site");
}
