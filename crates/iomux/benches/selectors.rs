//! Criterion benchmarks of one wait + dispatch per selector implementation (placeholder until written).
fn main() {}
