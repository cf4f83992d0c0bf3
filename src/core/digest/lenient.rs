//! Lenient fields: a field of an unexpected JSON type is read and dropped instead of
//! failing its line, so one odd field never hides a terminal event.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A field that accepts the JSON types `T` knows and reads and drops any other value, so a
/// wrong-typed field never fails its line.
pub(super) struct Lenient<T>(pub(super) Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

/// What a lenient field makes of each JSON type; `None` drops the value.
pub(super) trait Accept<'de>: Sized {
    /// Whether strings are wanted at all: an escaped string is otherwise not copied.
    const TAKES_TEXT: bool = false;

    fn text(_text: Cow<'de, str>) -> Option<Self> {
        None
    }

    fn boolean(_value: bool) -> Option<Self> {
        None
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de, T: Accept<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: Accept<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Lenient(T::boolean(value)))
    }

    fn visit_i64<E>(self, _value: i64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_u64<E>(self, _value: u64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_i128<E>(self, _value: i128) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_u128<E>(self, _value: u128) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_f64<E>(self, _value: f64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Lenient(T::text(Cow::Borrowed(value))))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        if !T::TAKES_TEXT {
            return Ok(Lenient(None));
        }
        Ok(Lenient(T::text(Cow::Owned(value.to_owned()))))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Lenient(T::text(Cow::Owned(value))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::seq(seq).map(Lenient)
    }

    // With `arbitrary_precision`, a large or fractional number also arrives here, as a
    // one-entry map; every `map` below reads it like any map and finds nothing it wants.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::map(map).map(Lenient)
    }
}

impl<'de: 'a, 'a> Accept<'de> for Cow<'a, str> {
    const TAKES_TEXT: bool = true;

    fn text(text: Cow<'de, str>) -> Option<Self> {
        Some(text)
    }
}

impl<'de> Accept<'de> for bool {
    fn boolean(value: bool) -> Option<Self> {
        Some(value)
    }
}

impl<'de> Accept<'de> for Map<String, Value> {
    fn map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        match Value::deserialize(MapAccessDeserializer::new(map))? {
            Value::Object(object) => Ok(Some(object)),
            // A number in `arbitrary_precision` disguise.
            _ => Ok(None),
        }
    }
}
