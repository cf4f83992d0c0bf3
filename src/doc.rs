//! doc: the fields flatline reads from on-disk documents, deserialized leniently and lazily.
//!
//! A delegation is about 2 KB of JSON of which flatline needs a few dozen bytes. These types
//! borrow strings from the read buffer and walk everything else with `Skip`, so the read
//! path allocates little (escaped strings, numbers, the keys of each object). Every field is a `Field`: a value of the wrong JSON
//! type does not fail the document, it becomes `Field::Wrong` and a warning (SPEC §1.1).
//!
//! What flatline does not read is still walked completely (`Skip`), never skimmed: a
//! document is rewritten through `serde_json::Value`, so whatever that parser would refuse
//! or change — a lone surrogate escape, nesting beyond its limit, a duplicate key (the last
//! would win), an object keyed `$serde_json::private::Number` (it would become a number) —
//! makes the document a problem on read, before anything is decided on it (SPEC §1.3).

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
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

    /// An object; the default walks it (or recognises an arbitrary-precision number).
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Field<Self>, A::Error> {
        match map.next_key_seed(KeySeed)? {
            Some(Key::Number) => {
                let text = map.next_value_seed(NumberSeed)?;
                Ok(number_field(&text))
            }
            Some(Key::Name(first)) => {
                map.next_value::<Skip>()?;
                skip_entries(map, first)?;
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
        while seq.next_element::<Skip>()?.is_some() {}
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

/// A value flatline does not read, walked completely: every string decoded (escapes and
/// surrogate pairs checked), nesting counted by serde_json's recursion limit (an object or
/// array 128 levels deep is refused, as the write path would refuse it), every object's keys
/// checked for duplicates and for the arbitrary-precision marker. `IgnoredAny` would skim
/// all of that.
pub struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Skip, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_none<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        match map.next_key_seed(KeySeed)? {
            Some(Key::Number) => {
                map.next_value_seed(NumberSeed)?;
            }
            Some(Key::Name(first)) => {
                map.next_value::<Skip>()?;
                skip_entries(map, first)?;
            }
            None => {}
        }
        Ok(Skip)
    }
}

/// Walks the rest of an object whose first key (`first`, its value consumed) was a name.
fn skip_entries<'de, A: MapAccess<'de>>(mut map: A, first: Cow<'de, str>) -> Result<(), A::Error> {
    let mut keys = Keys::default();
    keys.push(first);
    while let Some(key) = map.next_key_seed(KeySeed)? {
        let Key::Name(name) = key else {
            return Err(number_key_error());
        };
        map.next_value::<Skip>()?;
        keys.push(name);
    }
    keys.check()
}

/// The error for an object that has the arbitrary-precision marker as a key.
pub fn number_key_error<E: de::Error>() -> E {
    E::custom(format_args!(
        "an object with the key {NUMBER_TOKEN:?}, which a rewrite would turn into a number"
    ))
}

/// The value under the arbitrary-precision marker key: the digits of a number when serde_json
/// made the entry from a number, which it hands over as an owned `String`. Text that spells
/// the marker itself as a key reaches `visit_str`/`visit_borrowed_str` (or another type), and
/// is refused.
pub struct NumberSeed;

impl<'de> DeserializeSeed<'de> for NumberSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(NumberVisitor)
    }
}

struct NumberVisitor;

impl<'de> Visitor<'de> for NumberVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_string<E: de::Error>(self, digits: String) -> Result<String, E> {
        Ok(digits)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<String, E> {
        Err(number_key_error())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(number_key_error())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(number_key_error())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(number_key_error())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(number_key_error())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(number_key_error())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(number_key_error())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(number_key_error())
    }
}

/// The keys of one object, to refuse a duplicate: `serde_json::Value` keeps only one of
/// them, so a rewrite would silently drop the other. Unescaped keys are borrowed, and the
/// first `INLINE_KEYS` live on the stack: most objects cost no allocation.
pub struct Keys<'de> {
    inline: [Cow<'de, str>; INLINE_KEYS],
    len: usize,
    /// Every key, once there are more than `INLINE_KEYS`.
    spill: Vec<Cow<'de, str>>,
}

/// Up to this many keys a pairwise comparison is cheapest; beyond, a sort.
const INLINE_KEYS: usize = 16;

impl Default for Keys<'_> {
    fn default() -> Self {
        Keys {
            inline: std::array::from_fn(|_| Cow::Borrowed("")),
            len: 0,
            spill: Vec::new(),
        }
    }
}

impl<'de> Keys<'de> {
    pub fn push(&mut self, key: Cow<'de, str>) {
        if self.len < INLINE_KEYS {
            self.inline[self.len] = key;
        } else {
            if self.spill.is_empty() {
                self.spill
                    .extend(self.inline.iter_mut().map(std::mem::take));
            }
            self.spill.push(key);
        }
        self.len += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `Err` naming the first duplicate key found.
    pub fn check<E: de::Error>(mut self) -> Result<(), E> {
        let duplicate = if self.len <= INLINE_KEYS {
            let keys = &self.inline[..self.len];
            keys.iter()
                .enumerate()
                .find(|(i, key)| keys[i + 1..].contains(key))
                .map(|(_, key)| key.clone())
        } else {
            let keys = &mut self.spill;
            keys.sort_unstable();
            keys.windows(2)
                .find(|pair| pair[0] == pair[1])
                .map(|pair| pair[0].clone())
        };
        match duplicate {
            None => Ok(()),
            Some(key) => Err(E::custom(format_args!(
                "duplicate key {:?}, of which a rewrite would keep only one",
                crate::core::text::preview(&key, 80)
            ))),
        }
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
                let mut keys = $crate::doc::Keys::default();
                while let Some(key) = map.next_key_seed($crate::doc::KeySeed)? {
                    match key {
                        $crate::doc::Key::Number if keys.is_empty() => {
                            map.next_value_seed($crate::doc::NumberSeed)?;
                            return Ok($crate::doc::Field::Wrong("a number"));
                        }
                        $crate::doc::Key::Number => {
                            return Err($crate::doc::number_key_error());
                        }
                        $crate::doc::Key::Name(name) => {
                            match name.as_ref() {
                                $($key => out.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<$crate::doc::Skip>()?;
                                }
                            }
                            keys.push(name);
                        }
                    }
                }
                keys.check()?;
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
        pidfd_ino: Int = "pidfd_ino",
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
        identity_anchor_at: Text<'de> = "identity_anchor_at",
        identity_upper_bound_at: Text<'de> = "identity_upper_bound_at",
        pid_ns: Int = "pid_ns",
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

/// Checks that a whole document is one JSON object that flatline could write back
/// unchanged (the rules of `Skip`), for documents read as a `serde_json::Value`.
pub fn check_document(bytes: &[u8]) -> Result<(), DocError> {
    parse_object::<Whole>(bytes).map(|_| ())
}

/// A whole document walked by `Skip` rules, its fields unread.
struct Whole;

impl<'de> FromJson<'de> for Whole {
    const EXPECTED: &'static str = "an object";

    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Field<Self>, A::Error> {
        match map.next_key_seed(KeySeed)? {
            Some(Key::Number) => {
                map.next_value_seed(NumberSeed)?;
                Ok(Field::Wrong("a number"))
            }
            Some(Key::Name(first)) => {
                map.next_value::<Skip>()?;
                skip_entries(map, first)?;
                Ok(Field::Value(Whole))
            }
            None => Ok(Field::Value(Whole)),
        }
    }
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
        // Skipped values are walked too: deep nesting there is refused at serde_json's
        // limit, before it could exhaust the stack.
        let deep_inside = format!("{{\"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_delegation(deep_inside.as_bytes()).is_err());
        let deep_field = format!(
            "{{\"child_agent\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse_delegation(deep_field.as_bytes()).is_err());
        let utf8 = parse_delegation(b"{\"a\": \"\xff\"}")
            .unwrap_err()
            .to_string();
        assert_eq!(utf8, "invalid UTF-8 at byte 7");
        assert!(parse_delegation(b"{\"a\": \"x\0y\"}").is_err());
    }

    /// The error of a document that must be refused, as text.
    fn refused(text: &str) -> String {
        let error = parse_delegation(text.as_bytes())
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"))
            .to_string();
        let card = check_document(text.as_bytes())
            .err()
            .unwrap_or_else(|| panic!("accepted as a card: {text}"))
            .to_string();
        assert_eq!(error, card, "{text}");
        error
    }

    fn accepted(text: &str) {
        assert!(parse_delegation(text.as_bytes()).is_ok(), "refused: {text}");
        assert!(
            check_document(text.as_bytes()).is_ok(),
            "refused as a card: {text}"
        );
    }

    #[test]
    fn lone_surrogates_are_refused_wherever_they_are() {
        for text in [
            r#"{"prompt": "\ud800"}"#,
            r#"{"prompt": {"deep": ["x", "a\udc00b"]}}"#,
            r#"{"prompt": "\ud800\u0041"}"#,
            r#"{"\ud800": 1}"#,
            r#"{"delegation_id": "\ud800"}"#,
            r#"{"worker_lifecycle": {"notes": ["\udbff"]}}"#,
            r#"{"worker_lifecycle": {"process_id": ["\ud800"]}}"#,
            r#"{"child_agent": {"status": {"x": "\ud800"}}}"#,
        ] {
            assert!(refused(text).contains("escape"), "{text}");
        }
        accepted(r#"{"prompt": "\ud83d\ude00 \u00e9 \n \/"}"#);
    }

    #[test]
    fn invalid_escapes_are_refused_in_ignored_fields() {
        refused(r#"{"prompt": "\x41"}"#);
        refused(r#"{"prompt": "\u12"}"#);
    }

    #[test]
    fn nesting_is_accepted_exactly_as_far_as_the_write_path_parses() {
        for depth in 120..136 {
            // `depth` levels in all: the document itself and depth - 1 arrays inside.
            let text = format!(
                "{{\"x\": {}{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            );
            let writable = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            assert_eq!(writable, depth <= 127, "depth {depth}");
            assert_eq!(
                parse_delegation(text.as_bytes()).is_ok(),
                writable,
                "depth {depth}"
            );
            assert_eq!(
                check_document(text.as_bytes()).is_ok(),
                writable,
                "depth {depth}"
            );
            let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            assert_eq!(
                parse_delegation(objects.as_bytes()).is_ok(),
                writable,
                "depth {depth}"
            );
            let in_field = format!(
                "{{\"worker_lifecycle\": {{\"process_id\": {}{}}}}}",
                "[".repeat(depth - 2),
                "]".repeat(depth - 2)
            );
            assert_eq!(
                parse_delegation(in_field.as_bytes()).is_ok(),
                writable,
                "depth {depth}"
            );
        }
        let message = refused(&format!(
            "{{\"x\": {}{}}}",
            "[".repeat(127),
            "]".repeat(127)
        ));
        assert!(message.contains("recursion limit"), "{message}");
    }

    #[test]
    fn the_arbitrary_precision_marker_key_is_refused() {
        for text in [
            r#"{"x": {"$serde_json::private::Number": "5"}}"#,
            r#"{"x": {"$serde_json::private::Number": 5}}"#,
            r#"{"x": {"a": 1, "$serde_json::private::Number": "5"}}"#,
            r#"{"x": [{"$serde_json::private::Numbe\u0072": "5"}]}"#,
            r#"{"$serde_json::private::Number": "5"}"#,
            r#"{"a": 1, "$serde_json::private::Number": "5"}"#,
            r#"{"worker_lifecycle": {"process_id": {"$serde_json::private::Number": "4242"}}}"#,
            r#"{"worker_lifecycle": {"$serde_json::private::Number": "4242"}}"#,
            r#"{"worker_lifecycle": {"state": "x", "$serde_json::private::Number": "1"}}"#,
            r#"{"child_agent": {"status": {"$serde_json::private::Number": "1"}}}"#,
        ] {
            assert!(
                refused(text).contains("$serde_json::private::Number"),
                "{text}"
            );
        }
        // Real numbers, which serde_json hands over under that key, are fine anywhere.
        accepted(
            r#"{"x": [1, -2, 2.5, -3e10, 123456789012345678901234567890], "worker_lifecycle": {"process_id": 1e3, "exit_code": -1}, "child_agent": 7}"#,
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_every_level() {
        for text in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"delegation_id": "a", "delegation_id": "b"}"#,
            r#"{"a": 1, "\u0061": 2}"#,
            r#"{"prompt": {"b": 1, "c": 2, "b": 3}}"#,
            r#"{"prompt": [{}, {"b": 1, "b": 1}]}"#,
            r#"{"worker_lifecycle": {"process_id": 1, "process_id": 2}}"#,
            r#"{"worker_lifecycle": {"notes": 1, "notes": 2}}"#,
            r#"{"child_agent": {"status": "running", "status": "completed"}}"#,
            r#"{"child_agent": {"status": {"x": 1, "x": 1}}}"#,
        ] {
            assert!(refused(text).contains("duplicate key"), "{text}");
        }
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        accepted(&format!("{{\"prompt\": {{{}}}}}", many.join(", ")));
        let mut twice = many.clone();
        twice.push("\"k7\": 0".into());
        let message = refused(&format!("{{\"prompt\": {{{}}}}}", twice.join(", ")));
        assert!(message.contains("duplicate key \"k7\""), "{message}");
        // Around the point where the keys leave the stack.
        for n in 1..40 {
            let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\": {i}")).collect();
            accepted(&format!("{{\"prompt\": {{{}}}}}", keys.join(", ")));
            accepted(&format!("{{{}}}", keys.join(", ")));
            for at in [0, n / 2, n - 1] {
                let mut twice = keys.clone();
                twice.push(format!("\"k{at}\": 0"));
                refused(&format!("{{\"prompt\": {{{}}}}}", twice.join(", ")));
                refused(&format!(
                    "{{\"worker_lifecycle\": {{{}}}}}",
                    twice.join(", ")
                ));
            }
        }
        // The same key in different objects is not a duplicate.
        accepted(r#"{"a": {"a": 1}, "b": {"a": 2}, "c": [{"a": 1}, {"a": 1}]}"#);
    }

    #[test]
    fn what_is_accepted_renders_back_to_an_equal_document() {
        let text = r#"{"b": {"n": 123456789012345678901234567890, "s": "\ud83d\ude00\n"}, "a": [1.5, [], {}], "worker_lifecycle": {"process_id": 7}}"#;
        accepted(text);
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let again: serde_json::Value = serde_json::from_slice(&render(&value)).unwrap();
        assert_eq!(value, again);
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
