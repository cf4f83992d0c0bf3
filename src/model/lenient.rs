//! lenient: the fields flatline reads from on-disk documents, deserialized leniently and lazily.
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
//!
//! Stream lines use the same types through `Lenient`: a line is read, never rewritten, so
//! what it does not read is skimmed (`Skim`) and a wrong type is dropped, not reported.

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
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

    pub fn into_value(self) -> Option<T> {
        match self {
            Field::Value(value) => Some(value),
            _ => None,
        }
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

    /// Whether strings are wanted at all: an escaped string is otherwise not copied.
    const TAKES_TEXT: bool = false;

    fn from_str(_text: Cow<'de, str>) -> Option<Self> {
        None
    }

    fn from_int(_value: Int) -> Option<Self> {
        None
    }

    fn from_bool(_value: bool) -> Option<Self> {
        None
    }

    /// An array; the default walks it by `W`.
    fn from_seq<W: Walk, A: SeqAccess<'de>>(seq: A) -> Result<Field<Self>, A::Error> {
        W::seq(seq)?;
        Ok(Field::Wrong("an array"))
    }

    /// An object; the default walks it by `W` (or recognises an arbitrary-precision number).
    fn from_map<W: Walk, A: MapAccess<'de>>(map: A) -> Result<Field<Self>, A::Error> {
        Ok(match W::map(map)? {
            Some(digits) => number_field(&digits),
            None => Field::Wrong("an object"),
        })
    }
}

/// How a value nobody reads is walked: completely for documents (`Complete`, the rules of
/// `Skip`), skimmed for stream lines (`Skim`, serde's `IgnoredAny`), which are never rewritten.
pub trait Walk {
    fn seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<(), A::Error>;

    /// `Some(digits)` when the object is an arbitrary-precision number (`Complete` only).
    fn map<'de, A: MapAccess<'de>>(map: A) -> Result<Option<String>, A::Error>;
}

/// Documents: every value walked by the rules of `Skip`.
pub enum Complete {}

impl Walk for Complete {
    fn seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }

    fn map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<String>, A::Error> {
        match map.next_key_seed(KeySeed)? {
            Some(Key::Number) => map.next_value_seed(NumberSeed).map(Some),
            Some(Key::Name(first)) => {
                map.next_value::<Skip>()?;
                skip_entries(map, first).map(|()| None)
            }
            None => Ok(None),
        }
    }
}

/// Stream lines: what is not read is skimmed, fast.
pub enum Skim {}

impl Walk for Skim {
    fn seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    // With `arbitrary_precision`, a large or fractional number also arrives here, as a
    // one-entry map; it is skimmed like any map.
    fn map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
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

impl<'de: 'a, 'a> FromJson<'de> for Cow<'a, str> {
    const EXPECTED: &'static str = "a string";
    const TAKES_TEXT: bool = true;

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

impl<'de> FromJson<'de> for Map<String, Value> {
    const EXPECTED: &'static str = "an object";

    fn from_map<W: Walk, A: MapAccess<'de>>(map: A) -> Result<Field<Self>, A::Error> {
        match Value::deserialize(MapAccessDeserializer::new(map))? {
            Value::Object(object) => Ok(Field::Value(object)),
            // A number in `arbitrary_precision` disguise.
            _ => Ok(Field::Wrong("a number")),
        }
    }
}

struct FieldVisitor<T, W>(PhantomData<(T, W)>);

impl<'de, T: FromJson<'de>, W: Walk> Visitor<'de> for FieldVisitor<T, W> {
    type Value = Field<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Field<T>, E> {
        Ok(T::from_str(Cow::Borrowed(text)).map_or(Field::Wrong("a string"), Field::Value))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Field<T>, E> {
        if !T::TAKES_TEXT {
            return Ok(Field::Wrong("a string"));
        }
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

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<T>, A::Error> {
        T::from_seq::<W, A>(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<T>, A::Error> {
        T::from_map::<W, A>(map)
    }
}

impl<'de, T: FromJson<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor::<T, Complete>(PhantomData))
    }
}

/// A field of a stream line: what `Field` would hold, a wrong type dropped rather than
/// reported, and what is not read skimmed (`Skim`), so one odd field never fails its line.
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: FromJson<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let field = deserializer.deserialize_any(FieldVisitor::<T, Skim>(PhantomData))?;
        Ok(Lenient(field.into_value()))
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

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Skip, A::Error> {
        Complete::seq(seq).map(|()| Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Skip, A::Error> {
        Complete::map(map).map(|_| Skip)
    }
}

/// Walks the rest of an object whose first key (`first`, its value consumed) was a name.
pub(super) fn skip_entries<'de, A: MapAccess<'de>>(
    mut map: A,
    first: Cow<'de, str>,
) -> Result<(), A::Error> {
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
