//! A `Client` and a `Server` against each other in memory, through their borrowed events.
//! The logic (input layout and checks) is `pgproto::fuzzing::pair_borrowed`, in `src/fuzzing.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::pair_borrowed(data));
