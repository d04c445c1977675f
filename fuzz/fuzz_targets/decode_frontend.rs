//! Arbitrary bytes through `FrontendDecoder`, fed in chunks.
//! The logic (input layout and checks) is `pgproto::fuzzing::decode_frontend`, in `src/fuzzing.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::decode_frontend(data));
