//! Arbitrary bytes through the protocol-2.0 `v2::BackendDecoder`, in chunks and whole. The
//! logic (input layout and checks) is `pgproto::fuzzing::v2_decode_backend`, in `src/fuzzing/v2.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::v2_decode_backend(data));
