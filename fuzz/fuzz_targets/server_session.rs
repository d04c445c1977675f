//! A client's bytes through a `Server` answered by a scripted application.
//! The logic (input layout and checks) is `pgproto::fuzzing::server_session`, in `src/fuzzing.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::server_session(data));
