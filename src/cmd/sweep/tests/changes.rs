//! The changes composed for one document.

use super::*;

#[test]
fn changes_say_whether_they_end_the_member_or_only_stamp_it() {
    assert!(Changes::default().is_empty());
    assert!(stamp().stamp_only() && !stamp().ends_member());
    let mark = marked(Termination::NoProcess);
    assert!(mark.ends_member() && !mark.stamp_only());
    let both = with_stamp(marked(Termination::Killed));
    assert!(both.ends_member() && !both.stamp_only());
}

#[test]
fn the_reclaim_names_the_action_and_every_detail_is_kept() {
    use crate::shell::commit::DocChange;
    assert_eq!(stamp().action(), "fan_in_stamped");
    let both = with_stamp(marked(Termination::NoProcess));
    assert_eq!(both.action(), reclaim(Termination::NoProcess).action());
    let fields = |detail: serde_json::Value| match detail {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    let detail = fields(serde_json::to_value(both.detail()).unwrap());
    let reclaim_detail = serde_json::to_value(reclaim(Termination::NoProcess).detail()).unwrap();
    let stamp_detail = serde_json::to_value(FanInStamp { at: 7 }.detail()).unwrap();
    for (key, value) in fields(reclaim_detail)
        .into_iter()
        .chain(fields(stamp_detail))
    {
        assert_eq!(detail.get(&key), Some(&value), "{key}");
    }
}

#[test]
fn changes_apply_all_or_nothing() {
    use crate::shell::commit::DocChange;
    let both = with_stamp(marked(Termination::NoProcess));
    let mut doc = serde_json::json!({"delegation_id": "d", "worker_lifecycle": 3});
    let before = doc.clone();
    assert!(
        both.apply(&mut doc, 0).is_err(),
        "worker_lifecycle is not an object"
    );
    assert_eq!(doc, before, "not even the stamp");
    let mut doc = serde_json::json!({"delegation_id": "d"});
    both.apply(&mut doc, 0).unwrap();
    assert!(doc.get("fan_in_collapsed_at").is_some());
    assert_eq!(doc["worker_lifecycle"]["reclaim_state"], "reclaimed");
}
