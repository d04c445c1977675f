//! Arbitrary bytes through `BackendDecoder`, read with `next()` and `next_ref()` in lockstep.
//! The logic (input layout and checks) is `pgproto::fuzzing::decode_backend`, in `src/fuzzing.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::decode_backend(data));
