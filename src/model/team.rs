//! The team layout's documents (SPEC §5): worker specs and heartbeats, the fields flatline
//! reads.

use super::lenient::Text;
use super::object::lenient_object;

lenient_object! {
    /// `workers/<name>/worker-spec.json`: the fields flatline reads.
    pub struct WorkerSpec<'de> {
        name: Text<'de> = "name",
        role: Text<'de> = "role",
        inbox: Text<'de> = "inbox",
        outbox: Text<'de> = "outbox",
        heartbeat: Text<'de> = "heartbeat",
    }
}

lenient_object! {
    /// A heartbeat document: `{"status", "name", "ts"}`.
    pub struct HeartbeatDoc<'de> {
        status: Text<'de> = "status",
        name: Text<'de> = "name",
        ts: Text<'de> = "ts",
    }
}
