use super::*;
use serde_json::json;

fn meta(uid: u32, mode: u32, nlink: u64) -> FileMeta {
    FileMeta {
        dev: 1,
        ino: 2,
        mode: libc::S_IFREG | mode,
        uid,
        gid: uid,
        nlink,
        size: 0,
        mtime_ms: 0,
    }
}

#[test]
fn a_document_speaks_for_its_owner_only_with_one_link_and_safe_modes() {
    assert_eq!(owned_document(&meta(0, 0o644, 1)), Some(0));
    assert_eq!(owned_document(&meta(0, 0o640, 1)), Some(0));
    assert_eq!(owned_document(&meta(0, 0o664, 1)), None);
    assert_eq!(owned_document(&meta(0, 0o666, 1)), None);
    assert_eq!(owned_document(&meta(0, 0o644, 2)), None);
    assert_eq!(owned_document(&meta(1000, 0o664, 1)), Some(1000));
    assert_eq!(owned_document(&meta(1000, 0o646, 1)), None);
    assert_eq!(owned_document(&meta(1000, 0o644, 3)), None);
}

#[test]
fn the_stamp_sets_two_fields() {
    let mut doc = json!({"a": 1});
    FanInStamp { at: 0 }.apply(&mut doc, 5).unwrap();
    assert_eq!(
        doc,
        json!({"a": 1, "fan_in_collapsed_at": "1970-01-01T00:00:00.000Z", "updated_at": "1970-01-01T00:00:00.000Z"})
    );
}
