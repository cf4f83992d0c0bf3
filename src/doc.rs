//! doc: the fields flatline reads from on-disk documents, deserialized leniently and lazily.
//!
//! A delegation is about 2 KB of JSON of which flatline needs a few dozen bytes. These types
//! borrow strings from the read buffer and skip everything else with `IgnoredAny`, so the
//! read path allocates almost nothing. Every field is a `Field`: a value of the wrong JSON
//! type does not fail the document, it becomes `Field::Wrong` and a warning (SPEC §1.1).

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// serde_json's marker key for a number kept as text (`arbitrary_precision`): such a number
/// reaches `visit_map` as a one-entry map with this key.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// One field of a document, as found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
    /// Present with another JSON type; the text names what was found ("a string").
    Wrong(&'static str),
}

impl<T> Field<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Value(value) => Some(value),
            _ => None,
        }
    }

    /// `Some(found)` when the field is present with the wrong type.
    pub fn wrong(&self) -> Option<&'static str> {
        match self {
            Field::Wrong(found) => Some(found),
            _ => None,
        }
    }

    pub fn is_present(&self) -> bool {
        !matches!(self, Field::Absent | Field::Null)
    }
}

impl<'de> Field<Text<'de>> {
    pub fn str(&self) -> Option<&str> {
        self.value().map(|text| text.as_ref())
    }
}

/// A JSON string, borrowed from the buffer when it has no escapes.
pub type Text<'de> = Cow<'de, str>;

/// A JSON integer (a fraction or exponent is not an integer; beyond i128 is out of range).
pub type Int = i128;

/// Something a `Field` can hold; each type accepts only the JSON types it expects.
pub trait FromJson<'de>: Sized {
    /// What the field should hold, for messages ("a string").
    const EXPECTED: &'static str;

    fn from_str(_text: Cow<'de, str>) -> Option<Self> {
        None
    }

    fn from_int(_value: Int) -> Option<Self> {
        None
    }

    fn from_bool(_value: bool) -> Option<Self> {
        None
    }

    /// An object; the default drains it (or recognises an arbitrary-precision number).
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Field<Self>, A::Error> {
        match map.next_key_seed(KeySeed)? {
            Some(Key::Number) => {
                let text: Cow<'de, str> = map.next_value()?;
                Ok(number_field(&text))
            }
            Some(_) => {
                map.next_value::<IgnoredAny>()?;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Wrong("an object"))
            }
            None => Ok(Field::Wrong("an object")),
        }
    }
}

fn number_field<'de, T: FromJson<'de>>(text: &str) -> Field<T> {
    if text.contains(['.', 'e', 'E']) {
        return Field::Wrong("a number with a fraction or exponent");
    }
    match text.parse::<Int>() {
        Ok(value) => T::from_int(value).map_or(Field::Wrong("a number"), Field::Value),
        Err(_) => Field::Wrong("an integer out of range"),
    }
}

impl<'de> FromJson<'de> for Text<'de> {
    const EXPECTED: &'static str = "a string";

    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        Some(text)
    }
}

impl<'de> FromJson<'de> for Int {
    const EXPECTED: &'static str = "an integer";

    fn from_int(value: Int) -> Option<Self> {
        Some(value)
    }
}

impl<'de> FromJson<'de> for bool {
    const EXPECTED: &'static str = "a boolean";

    fn from_bool(value: bool) -> Option<Self> {
        Some(value)
    }
}

struct FieldVisitor<T>(PhantomData<T>);

impl<'de, T: FromJson<'de>> Visitor<'de> for FieldVisitor<T> {
    type Value = Field<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Field<T>, E> {
        Ok(T::from_str(Cow::Borrowed(text)).map_or(Field::Wrong("a string"), Field::Value))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Field<T>, E> {
        Ok(T::from_str(Cow::Owned(text.to_owned())).map_or(Field::Wrong("a string"), Field::Value))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Field<T>, E> {
        Ok(T::from_str(Cow::Owned(text)).map_or(Field::Wrong("a string"), Field::Value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Field<T>, E> {
        Ok(T::from_int(Int::from(value)).map_or(Field::Wrong("a number"), Field::Value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Field<T>, E> {
        Ok(T::from_int(Int::from(value)).map_or(Field::Wrong("a number"), Field::Value))
    }

    fn visit_f64<E: de::Error>(self, _value: f64) -> Result<Field<T>, E> {
        Ok(Field::Wrong("a number with a fraction or exponent"))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Field<T>, E> {
        Ok(T::from_bool(value).map_or(Field::Wrong("a boolean"), Field::Value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Field<T>, E> {
        Ok(Field::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Field<T>, E> {
        Ok(Field::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Wrong("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<T>, A::Error> {
        T::from_map(map)
    }
}

impl<'de, T: FromJson<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

/// A key of an object, compared without allocating.
pub enum Key<'de> {
    Number,
    Name(Cow<'de, str>),
}

pub struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(if key == NUMBER_TOKEN {
            Key::Number
        } else {
            Key::Name(Cow::Borrowed(key))
        })
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(if key == NUMBER_TOKEN {
            Key::Number
        } else {
            Key::Name(Cow::Owned(key.to_owned()))
        })
    }
}

/// Declares a lenient object: a struct of `Field`s read from the named keys, all other keys
/// skipped, and a list of the fields that had the wrong type.
macro_rules! lenient_object {
    ($(#[$meta:meta])* pub struct $name:ident<$de:lifetime> { $($field:ident : $ty:ty = $key:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name<$de> {
            $(pub $field: $crate::doc::Field<$ty>,)*
            _borrow: ::std::marker::PhantomData<&$de ()>,
        }

        impl<$de> $crate::doc::FromJson<$de> for $name<$de> {
            const EXPECTED: &'static str = "an object";

            fn from_map<A: ::serde::de::MapAccess<$de>>(
                mut map: A,
            ) -> Result<$crate::doc::Field<Self>, A::Error> {
                let mut out = Self::default();
                while let Some(key) = map.next_key_seed($crate::doc::KeySeed)? {
                    match key {
                        $crate::doc::Key::Number => {
                            map.next_value::<::serde::de::IgnoredAny>()?;
                            return Ok($crate::doc::Field::Wrong("a number"));
                        }
                        $crate::doc::Key::Name(name) => match name.as_ref() {
                            $($key => out.$field = map.next_value()?,)*
                            _ => {
                                map.next_value::<::serde::de::IgnoredAny>()?;
                            }
                        },
                    }
                }
                Ok($crate::doc::Field::Value(out))
            }
        }

        impl<$de> $name<$de> {
            /// Appends every field of the wrong type, nested objects included, with its
            /// dotted path (`worker_lifecycle.process_id`). `path` is the prefix so far; it
            /// is restored before returning, so the walk allocates only for what it reports.
            #[allow(dead_code)]
            pub fn wrong_types(&self, path: &mut String, out: &mut Vec<$crate::doc::WrongType>) {
                $(
                    match &self.$field {
                        $crate::doc::Field::Wrong(found) => {
                            let len = $crate::doc::push_key(path, $key);
                            out.push($crate::doc::WrongType {
                                path: path.clone(),
                                found,
                                expected: <$ty as $crate::doc::FromJson>::EXPECTED,
                            });
                            path.truncate(len);
                        }
                        $crate::doc::Field::Value(value) if <$ty as $crate::doc::Nested>::IS_OBJECT => {
                            let len = $crate::doc::push_key(path, $key);
                            $crate::doc::Nested::nested_wrong_types(value, path, out);
                            path.truncate(len);
                        }
                        _ => {}
                    }
                )*
            }
        }

        impl<$de> $crate::doc::Nested for $name<$de> {
            const IS_OBJECT: bool = true;

            fn nested_wrong_types(&self, path: &mut String, out: &mut Vec<$crate::doc::WrongType>) {
                self.wrong_types(path, out);
            }
        }
    };
}
pub(crate) use lenient_object;

/// A field of the wrong type: where, what was found, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongType {
    pub path: String,
    pub found: &'static str,
    pub expected: &'static str,
}

/// Lets `wrong_types` descend into nested objects and stop at leaves.
pub trait Nested {
    const IS_OBJECT: bool = false;

    fn nested_wrong_types(&self, _path: &mut String, _out: &mut Vec<WrongType>) {}
}

/// Appends `.key` (or `key` at the top) to `path`; returns the length to truncate back to.
pub fn push_key(path: &mut String, key: &str) -> usize {
    let len = path.len();
    if len > 0 {
        path.push('.');
    }
    path.push_str(key);
    len
}

impl Nested for Text<'_> {}
impl Nested for Int {}
impl Nested for bool {}

lenient_object! {
    /// `child_agent` and `executor`: the worker's status.
    pub struct StatusHolder<'de> {
        status: Text<'de> = "status",
    }
}

lenient_object! {
    /// `worker_request`: where a work kind may be recorded.
    pub struct WorkerRequest<'de> {
        work_kind: Text<'de> = "work_kind",
    }
}

lenient_object! {
    /// `worker_launch_evidence`: the launch record.
    pub struct LaunchEvidence<'de> {
        work_kind: Text<'de> = "work_kind",
        raw_events_file: Text<'de> = "raw_events_file",
    }
}

lenient_object! {
    /// `worker_lifecycle.process_fingerprint`: the identity flatline stamped (SPEC §3.1).
    pub struct Fingerprint<'de> {
        start_ticks: Int = "start_ticks",
        boot_id: Text<'de> = "boot_id",
        pid_ns: Int = "pid_ns",
    }
}

lenient_object! {
    /// `worker_lifecycle.raw_events_inode`: the stream flatline saw first (SPEC §3.2).
    pub struct StreamInode<'de> {
        dev: Int = "dev",
        ino: Int = "ino",
    }
}

lenient_object! {
    /// `worker_lifecycle`: the orchestrator's record of the worker's life.
    pub struct Lifecycle<'de> {
        state: Text<'de> = "state",
        reclaim_state: Text<'de> = "reclaim_state",
        queued_at: Text<'de> = "queued_at",
        launch_requested_at: Text<'de> = "launch_requested_at",
        started_at: Text<'de> = "started_at",
        process_id: Int = "process_id",
        process_started_at: Text<'de> = "process_started_at",
        process_last_seen_at: Text<'de> = "process_last_seen_at",
        last_progress_at: Text<'de> = "last_progress_at",
        returned_at: Text<'de> = "returned_at",
        raw_events_inode: StreamInode<'de> = "raw_events_inode",
        stale_at: Text<'de> = "stale_at",
        timed_out_at: Text<'de> = "timed_out_at",
        exit_code: Int = "exit_code",
        process_fingerprint: Fingerprint<'de> = "process_fingerprint",
        quiet_after_ms: Int = "quiet_after_ms",
        stale_after_ms: Int = "stale_after_ms",
        timeout_after_ms: Int = "timeout_after_ms",
    }
}

lenient_object! {
    /// `worker_result`: what refresh recorded when the worker finished.
    pub struct WorkerResult<'de> {
        status: Text<'de> = "status",
        thread_id: Text<'de> = "thread_id",
    }
}

lenient_object! {
    /// A delegation document (SPEC §1.1): only the fields flatline reads.
    pub struct Delegation<'de> {
        delegation_id: Text<'de> = "delegation_id",
        task_card_id: Text<'de> = "task_card_id",
        work_kind: Text<'de> = "work_kind",
        child_agent: StatusHolder<'de> = "child_agent",
        executor: StatusHolder<'de> = "executor",
        worker_request: WorkerRequest<'de> = "worker_request",
        worker_launch_evidence: LaunchEvidence<'de> = "worker_launch_evidence",
        worker_lifecycle: Lifecycle<'de> = "worker_lifecycle",
        worker_result: WorkerResult<'de> = "worker_result",
        fan_in_collapsed_at: Text<'de> = "fan_in_collapsed_at",
    }
}

/// Why a document could not be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    /// Not JSON: the message names the line and column.
    Syntax(String),
    /// JSON, but not an object.
    NotObject(&'static str),
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocError::Syntax(message) => f.write_str(message),
            DocError::NotObject(found) => write!(f, "not a JSON object (found {found})"),
        }
    }
}

/// Describes a serde_json error as "invalid JSON at line L column C (cause)".
pub fn syntax_error(bytes: &[u8], error: &serde_json::Error) -> DocError {
    let cause = error.to_string();
    let cause = match cause.find(" at line ") {
        Some(index) => cause[..index].to_string(),
        None => cause,
    };
    let hint = if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        "; the file starts with a UTF-8 byte order mark"
    } else {
        ""
    };
    DocError::Syntax(format!(
        "invalid JSON at line {} column {} ({cause}{hint})",
        error.line(),
        error.column()
    ))
}

/// Parses a whole document that must be one JSON object of type `T`.
pub fn parse_object<'de, T: FromJson<'de>>(bytes: &'de [u8]) -> Result<T, DocError> {
    // Skipped strings are not checked by serde_json: check the whole document once, so that
    // what the read path accepts the write path can parse too.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DocError::Syntax(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let field = Field::<T>::deserialize(&mut deserializer).map_err(|e| syntax_error(bytes, &e))?;
    deserializer.end().map_err(|e| syntax_error(bytes, &e))?;
    match field {
        Field::Value(value) => Ok(value),
        Field::Null => Err(DocError::NotObject("null")),
        Field::Wrong(found) => Err(DocError::NotObject(found)),
        Field::Absent => Err(DocError::NotObject("nothing")),
    }
}

/// Parses a delegation document.
pub fn parse_delegation(bytes: &[u8]) -> Result<Delegation<'_>, DocError> {
    parse_object(bytes)
}

/// Renders a document as flatline writes it: pretty-printed with two spaces, final newline.
pub fn render(value: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_and_skips_the_rest() {
        let text = br#"{
            "delegation_id": "d1",
            "prompt": {"deep": [1, 2, {"x": "y"}]},
            "child_agent": {"status": "running", "other": 1},
            "worker_lifecycle": {"process_id": 4242, "last_progress_at": "2026-11-22T08:00:00Z",
                                 "process_fingerprint": {"start_ticks": 12345, "boot_id": "b", "pid_ns": 4026531836}}
        }"#;
        let doc = parse_delegation(text).unwrap();
        assert_eq!(doc.delegation_id.str(), Some("d1"));
        assert_eq!(
            doc.child_agent.value().unwrap().status.str(),
            Some("running")
        );
        let lifecycle = doc.worker_lifecycle.value().unwrap();
        assert_eq!(lifecycle.process_id, Field::Value(4242));
        assert_eq!(
            lifecycle.last_progress_at.str(),
            Some("2026-11-22T08:00:00Z")
        );
        let fingerprint = lifecycle.process_fingerprint.value().unwrap();
        assert_eq!(fingerprint.start_ticks, Field::Value(12345));
        assert_eq!(fingerprint.pid_ns, Field::Value(4_026_531_836));
        assert!(matches!(doc.delegation_id.value(), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn wrong_types_become_warnings_not_failures() {
        let text = br#"{"delegation_id": 7, "child_agent": "running",
            "worker_lifecycle": {"process_id": "12", "last_progress_at": 7, "stale_after_ms": 1.5,
                                 "timeout_after_ms": [1], "quiet_after_ms": {"a": 1}, "started_at": true}}"#;
        let doc = parse_delegation(text).unwrap();
        let mut wrong = Vec::new();
        doc.wrong_types(&mut String::new(), &mut wrong);
        let found: Vec<(String, &str)> = wrong.iter().map(|w| (w.path.clone(), w.found)).collect();
        assert_eq!(
            found,
            [
                ("delegation_id".to_string(), "a number"),
                ("child_agent".to_string(), "a string"),
                ("worker_lifecycle.started_at".to_string(), "a boolean"),
                ("worker_lifecycle.process_id".to_string(), "a string"),
                ("worker_lifecycle.last_progress_at".to_string(), "a number"),
                ("worker_lifecycle.quiet_after_ms".to_string(), "an object"),
                (
                    "worker_lifecycle.stale_after_ms".to_string(),
                    "a number with a fraction or exponent"
                ),
                ("worker_lifecycle.timeout_after_ms".to_string(), "an array"),
            ]
        );
        assert_eq!(wrong[3].expected, "an integer");
    }

    #[test]
    fn big_and_negative_integers() {
        let doc = parse_delegation(
            br#"{"worker_lifecycle": {"process_id": 4294967297, "exit_code": -1, "stale_after_ms": 123456789012345678901234567890}}"#,
        )
        .unwrap();
        let lifecycle = doc.worker_lifecycle.value().unwrap();
        assert_eq!(lifecycle.process_id, Field::Value(4_294_967_297));
        assert_eq!(lifecycle.exit_code, Field::Value(-1));
        assert_eq!(
            lifecycle.stale_after_ms,
            Field::Value(123_456_789_012_345_678_901_234_567_890)
        );
        let huge = parse_delegation(
            br#"{"worker_lifecycle": {"process_id": 1234567890123456789012345678901234567890123}}"#,
        )
        .unwrap();
        assert_eq!(
            huge.worker_lifecycle.value().unwrap().process_id,
            Field::Wrong("an integer out of range")
        );
    }

    #[test]
    fn a_nested_object_given_as_a_number_is_wrong() {
        let doc = parse_delegation(
            br#"{"worker_lifecycle": 1.5, "child_agent": 99999999999999999999999}"#,
        )
        .unwrap();
        assert_eq!(doc.worker_lifecycle.wrong(), Some("a number"));
        assert_eq!(doc.child_agent.wrong(), Some("a number"));
    }

    #[test]
    fn null_is_absent_not_wrong() {
        let doc = parse_delegation(br#"{"task_card_id": null, "worker_lifecycle": null}"#).unwrap();
        assert_eq!(doc.task_card_id, Field::Null);
        assert_eq!(doc.worker_lifecycle.wrong(), None);
        let mut wrong = Vec::new();
        doc.wrong_types(&mut String::new(), &mut wrong);
        assert!(wrong.is_empty());
    }

    #[test]
    fn escaped_strings_are_owned_and_decoded() {
        let doc = parse_delegation(br#"{"delegation_id": "d\u00e9\n"}"#).unwrap();
        assert_eq!(doc.delegation_id.str(), Some("dé\n"));
    }

    #[test]
    fn whole_document_errors() {
        assert_eq!(
            parse_delegation(b"[1,2]").unwrap_err(),
            DocError::NotObject("an array")
        );
        assert_eq!(
            parse_delegation(b"null").unwrap_err(),
            DocError::NotObject("null")
        );
        let truncated = parse_delegation(b"{\n  \"a\": 1,\n  \"b\": ")
            .unwrap_err()
            .to_string();
        assert!(
            truncated.starts_with("invalid JSON at line 3 column"),
            "{truncated}"
        );
        let bom = parse_delegation(b"\xEF\xBB\xBF{}").unwrap_err().to_string();
        assert!(bom.contains("byte order mark"), "{bom}");
        let trailing = parse_delegation(b"{} {}").unwrap_err().to_string();
        assert!(trailing.contains("trailing characters"), "{trailing}");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_delegation(deep.as_bytes()).is_err());
        let deep_inside = format!("{{\"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        // Skipped values are walked without recursion: deep nesting there is harmless.
        assert!(parse_delegation(deep_inside.as_bytes()).is_ok());
        let deep_field = format!(
            "{{\"child_agent\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse_delegation(deep_field.as_bytes()).is_ok());
        let utf8 = parse_delegation(b"{\"a\": \"\xff\"}")
            .unwrap_err()
            .to_string();
        assert_eq!(utf8, "invalid UTF-8 at byte 7");
        assert!(parse_delegation(b"{\"a\": \"x\0y\"}").is_err());
    }

    #[test]
    fn render_is_pretty_with_a_final_newline() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"n":123456789012345678901234567890}}"#).unwrap();
        assert_eq!(
            String::from_utf8(render(&value)).unwrap(),
            "{\n  \"b\": 1,\n  \"a\": {\n    \"n\": 123456789012345678901234567890\n  }\n}\n"
        );
    }
}
