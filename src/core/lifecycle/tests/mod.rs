use super::*;
use crate::core::identity::test_host;
use crate::model::parse_delegation;

mod records;
mod states;
mod streams;
mod thresholds;

const NOW: Millis = 1_795_334_400_000; // 2026-11-22T08:00:00.000Z

fn at(offset_ms: Millis) -> String {
    time::format_rfc3339(NOW + offset_ms)
}

fn running(lifecycle: &str) -> String {
    format!(
        r#"{{"delegation_id":"d1","task_card_id":"t1","child_agent":{{"status":"running"}},"worker_lifecycle":{{{lifecycle}}}}}"#
    )
}

fn view_of(text: &str, policy: &Thresholds, process: &ProcessFacts) -> (State, View<'static>) {
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    let doc: &'static Delegation<'static> =
        Box::leak(Box::new(parse_delegation(leaked.as_bytes()).unwrap()));
    let times = Times::of(doc.worker_lifecycle.value());
    let view = view(doc, &times, NOW, policy, process);
    (view.state, view)
}

fn state_of(lifecycle: &str) -> View<'static> {
    view_of(
        &running(lifecycle),
        &Thresholds::default(),
        &ProcessFacts::NoPid,
    )
    .1
}
