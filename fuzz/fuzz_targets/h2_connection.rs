//! See `lameduck::fuzzing::h2_connection` for the input format and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck::fuzzing::h2_connection(data));
