//! See `lameduck::fuzzing::api_requests` for the input format and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck::fuzzing::api_requests(data));
