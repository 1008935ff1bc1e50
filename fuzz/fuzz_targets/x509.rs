//! Any bytes through `truc::fuzzing::x509`: no panic, and its invariants hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    truc::fuzzing::x509(data);
});
