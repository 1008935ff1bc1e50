//! Any bytes through `truc::fuzzing::c14n`: no panic, and its invariants hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    truc::fuzzing::c14n(data);
});
