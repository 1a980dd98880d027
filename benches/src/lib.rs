//! Benchmarks for rpc-core. The criterion benches and the `loadgen` binary arrive with the benchmark work.
