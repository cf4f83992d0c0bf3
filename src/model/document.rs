//! Whole documents: parsing one JSON object, the errors that make a document unusable,
//! and rendering a document as flatline writes it.

use serde::Deserialize;
use serde::de::MapAccess;
use std::fmt;

use super::lenient::{Complete, Field, FromJson, Walk};

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

/// Checks that a whole document is one JSON object that flatline could write back
/// unchanged (the rules of `Skip`), for documents read as a `serde_json::Value`.
pub fn check_document(bytes: &[u8]) -> Result<(), DocError> {
    parse_object::<Whole>(bytes).map(|_| ())
}

/// A whole document walked by `Skip` rules, its fields unread.
struct Whole;

impl<'de> FromJson<'de> for Whole {
    const EXPECTED: &'static str = "an object";

    fn from_map<W: Walk, A: MapAccess<'de>>(map: A) -> Result<Field<Self>, A::Error> {
        Ok(match Complete::map(map)? {
            Some(_) => Field::Wrong("a number"),
            None => Field::Value(Whole),
        })
    }
}

/// Renders a document as flatline writes it: pretty-printed with two spaces, final newline.
pub fn render(value: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}
