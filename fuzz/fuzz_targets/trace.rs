//! Both directions' bytes through a `Tracer`, and every chunk through the `Formatter`.
//! The logic (input layout and checks) is `pgproto::fuzzing::trace`, in `src/fuzzing.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::trace(data));
