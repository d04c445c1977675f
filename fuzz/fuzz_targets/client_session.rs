//! A server's bytes through a `Client`, following the run-loop contract.
//! The logic (input layout and checks) is `pgproto::fuzzing::client_session`, in `src/fuzzing.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::client_session(data));
