//! A `Client` and a `Server` against each other in memory, through their borrowed events.
//! The logic (input layout and checks) is `pgproto::fuzzing::pair_borrowed`, in `src/fuzzing/pair.rs`
//! (the server's application, with its wrong answers, in `src/fuzzing/pair/server_app.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgproto::fuzzing::pair_borrowed(data));
