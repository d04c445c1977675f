//! Arbitrary text through `pgproto::conninfo::ConnInfo::parse`.
//! The logic (the checks) is `pgproto::fuzzing::conninfo`, in `src/fuzzing.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::conninfo(data));
