//! CopyData payloads through the replication and pgoutput decoders, text through the command,
//! LSN and timestamp parsers. The logic (input layout and checks) is
//! `pgproto::fuzzing::decode_replication`, in `src/fuzzing/replication.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::decode_replication(data));
