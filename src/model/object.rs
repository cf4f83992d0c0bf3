//! Lenient objects: a struct of `Field`s read from named keys, every other key skipped,
//! and the list of the fields that had the wrong type.

use super::lenient::{Int, Text};

/// Declares a lenient object: a struct of `Field`s read from the named keys, all other keys
/// skipped, and a list of the fields that had the wrong type.
macro_rules! lenient_object {
    ($(#[$meta:meta])* pub struct $name:ident<$de:lifetime> { $($field:ident : $ty:ty = $key:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name<$de> {
            $(pub $field: $crate::model::Field<$ty>,)*
            _borrow: ::std::marker::PhantomData<&$de ()>,
        }

        impl<$de> $crate::model::FromJson<$de> for $name<$de> {
            const EXPECTED: &'static str = "an object";

            fn from_map<W: $crate::model::Walk, A: ::serde::de::MapAccess<$de>>(
                mut map: A,
            ) -> Result<$crate::model::Field<Self>, A::Error> {
                let mut out = Self::default();
                let mut keys = $crate::model::Keys::default();
                while let Some(key) = map.next_key_seed($crate::model::KeySeed)? {
                    match key {
                        $crate::model::Key::Number if keys.is_empty() => {
                            map.next_value_seed($crate::model::NumberSeed)?;
                            return Ok($crate::model::Field::Wrong("a number"));
                        }
                        $crate::model::Key::Number => {
                            return Err($crate::model::number_key_error());
                        }
                        $crate::model::Key::Name(name) => {
                            match name.as_ref() {
                                $($key => out.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<$crate::model::Skip>()?;
                                }
                            }
                            keys.push(name);
                        }
                    }
                }
                keys.check()?;
                Ok($crate::model::Field::Value(out))
            }
        }

        impl<$de> $name<$de> {
            /// Appends every field of the wrong type, nested objects included, with its
            /// dotted path (`worker_lifecycle.process_id`). `path` is the prefix so far; it
            /// is restored before returning, so the walk allocates only for what it reports.
            #[allow(dead_code)]
            pub fn wrong_types(&self, path: &mut String, out: &mut Vec<$crate::model::WrongType>) {
                $(
                    match &self.$field {
                        $crate::model::Field::Wrong(found) => {
                            let len = $crate::model::push_key(path, $key);
                            out.push($crate::model::WrongType {
                                path: path.clone(),
                                found,
                                expected: <$ty as $crate::model::FromJson>::EXPECTED,
                            });
                            path.truncate(len);
                        }
                        $crate::model::Field::Value(value) if <$ty as $crate::model::Nested>::IS_OBJECT => {
                            let len = $crate::model::push_key(path, $key);
                            $crate::model::Nested::nested_wrong_types(value, path, out);
                            path.truncate(len);
                        }
                        _ => {}
                    }
                )*
            }
        }

        impl<$de> $crate::model::Nested for $name<$de> {
            const IS_OBJECT: bool = true;

            fn nested_wrong_types(&self, path: &mut String, out: &mut Vec<$crate::model::WrongType>) {
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
