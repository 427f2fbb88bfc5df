//! See `lameduck::fuzzing::http1_connection` for the input format and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck::fuzzing::http1_connection(data));
