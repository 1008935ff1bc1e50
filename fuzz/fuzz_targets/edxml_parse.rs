//! Any bytes through the edXML reader, both modes: no panic, and the invariants of
//! `truc::fuzzing::edxml_parse` hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    truc::fuzzing::edxml_parse(data);
});
