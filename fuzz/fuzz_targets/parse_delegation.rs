//! Delegation parsing (SPEC §1.1) and the lifecycle view built on it, over arbitrary bytes:
//! a wrong type is a warning, never a failure of the document, and never a panic.
#![no_main]

use flatline::core::lifecycle::{self, ProcessFacts, Thresholds, Times};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_334_400_000;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = flatline::model::parse_delegation(data) else {
        return;
    };
    let mut wrong = Vec::new();
    doc.wrong_types(&mut String::new(), &mut wrong);
    let times = Times::of(doc.worker_lifecycle.value());
    for facts in [ProcessFacts::NotChecked, ProcessFacts::NoPid] {
        let view = lifecycle::view(&doc, &times, NOW, &Thresholds::default(), &facts);
        let _ = format!("{view:?}");
    }
    let _ = lifecycle::recorded_fingerprint(doc.worker_lifecycle.value());
    // Every timestamp flatline accepted formats back to one it accepts (an offset once
    // carried instants out of years 0000-9999: tests/integration/adversarial.rs,
    // timestamps_pushed_out_of_range_by_an_offset_are_invalid).
    for ms in [times.last_progress_at, times.started_at, times.queued_at]
        .into_iter()
        .flatten()
    {
        let text = flatline::core::time::format_rfc3339(ms);
        assert!(
            flatline::core::time::parse_rfc3339(&text).is_some(),
            "{ms} formats as {text}, which does not parse"
        );
    }
});
