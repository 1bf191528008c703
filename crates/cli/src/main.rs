//! The voxbridge binary.
fn main() {}
