//! The worker-spec reader (SPEC §5) over arbitrary bytes: a spec it accepts passes the
//! whole-document check the write path relies on; wrong types are warnings; no panic.
//! (tests/integration/fuzz_replay.rs replays the same reader with more invariants.)
#![no_main]

use flatline::model::{self, WorkerSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = model::parse_object::<WorkerSpec<'_>>(data) else {
        return;
    };
    model::check_document(data).expect("accepted, so a whole document");
    let mut wrong = Vec::new();
    spec.wrong_types(&mut String::new(), &mut wrong);
    let _ = (spec.name.str(), spec.inbox.str(), spec.heartbeat.str());
});
