//! Any bytes through `truc::fuzzing::dsig_verify`: no panic, and its invariants hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    truc::fuzzing::dsig_verify(data);
});
