//! What fan-in writes: the stamp on a member (its record is `output::FanInRecord`).

use super::*;

/// The collapse stamp on one document: `fan_in_collapsed_at` and `updated_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanInStamp {
    pub at: Millis,
}

impl DocChange for FanInStamp {
    fn action(&self) -> &'static str {
        "fan_in_stamped"
    }

    type Detail = StampDetail;

    fn detail(&self) -> StampDetail {
        StampDetail {
            fan_in_collapsed_at: Ts(Some(self.at)),
        }
    }

    fn apply(&self, doc: &mut Value, _now: Millis) -> Result<(), ApplyError> {
        let object = object_mut(doc)?;
        object.insert("fan_in_collapsed_at".into(), ts(self.at));
        object.insert("updated_at".into(), ts(self.at));
        Ok(())
    }
}
