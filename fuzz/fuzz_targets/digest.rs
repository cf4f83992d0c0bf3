//! The event digest (SPEC §1.4) over arbitrary bytes: whatever a worker wrote, one pass, no
//! panic, bounded output. Small line limits make the "line too long" path reachable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let digest = flatline::core::digest::digest(data).expect("reading a slice cannot fail");
    assert_eq!(digest.bytes, data.len() as u64);
    assert!(digest.skipped_lines <= digest.lines);
    assert!(digest.json_lines <= digest.lines);
    // Text copied into documents is cut (SPEC §1.4: 180 and 220 scalar values, plus "...").
    if let Some(text) = &digest.final_text {
        assert!(text.chars().count() <= 183, "{text:?}");
    }
    assert!(digest.raw_preview.chars().count() <= 223);
    if let Some(usage) = &digest.usage {
        assert!(usage.is_object());
    }
    let _ = flatline::core::digest::verdict_with_exit(&digest, None);
    // The same bytes with a tiny line limit: the long-line path, same invariants.
    let small = flatline::core::digest::digest_with_limit(data, 16).expect("slice");
    assert_eq!(small.bytes, data.len() as u64);
    assert!(small.skipped_lines <= small.lines);
});
