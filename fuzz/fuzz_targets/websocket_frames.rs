//! See `lameduck::fuzzing::websocket_frames` for the input format and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck::fuzzing::websocket_frames(data));
