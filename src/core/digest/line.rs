//! The line as read: one struct for every shape, each field lenient.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, SeqAccess};
use serde_json::{Map, Value};

use crate::model::{Field, FromJson, Lenient, Walk};

pub(super) type Text<'a> = Lenient<Cow<'a, str>>;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Line<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Text<'a>,
    #[serde(borrow)]
    pub(super) subtype: Text<'a>,
    #[serde(borrow)]
    pub(super) thread_id: Text<'a>,
    #[serde(borrow)]
    pub(super) session_id: Text<'a>,
    #[serde(borrow)]
    pub(super) item: Lenient<Item<'a>>,
    pub(super) usage: Lenient<Map<String, Value>>,
    #[serde(borrow)]
    pub(super) error: Lenient<ErrorText<'a>>,
    #[serde(borrow)]
    pub(super) message: Lenient<MessageField<'a>>,
    #[serde(borrow)]
    pub(super) msg: Lenient<Event<'a>>,
    #[serde(borrow)]
    pub(super) payload: Lenient<Event<'a>>,
    pub(super) is_error: Lenient<bool>,
    #[serde(borrow)]
    pub(super) result: Text<'a>,
    #[serde(borrow)]
    pub(super) errors: Lenient<TextList<'a>>,
    #[serde(borrow)]
    pub(super) role: Text<'a>,
    #[serde(borrow)]
    pub(super) content: Lenient<Content<'a>>,
    pub(super) delta: Lenient<bool>,
    #[serde(borrow)]
    pub(super) status: Text<'a>,
    pub(super) stats: Lenient<Map<String, Value>>,
    pub(super) response: Lenient<Response>,
}

/// A Codex `exec --json` item.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Item<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Text<'a>,
    #[serde(borrow)]
    pub(super) text: Text<'a>,
    #[serde(borrow)]
    pub(super) message: Text<'a>,
}

/// A legacy Codex `msg` or a rollout `payload`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Text<'a>,
    #[serde(borrow)]
    pub(super) message: Text<'a>,
    #[serde(borrow)]
    pub(super) last_agent_message: Text<'a>,
    pub(super) info: Lenient<TokenInfo>,
    pub(super) usage: Lenient<Map<String, Value>>,
    #[serde(borrow)]
    pub(super) session_id: Text<'a>,
    #[serde(borrow)]
    pub(super) id: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TokenInfo {
    pub(super) total_token_usage: Lenient<Map<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Response {
    pub(super) usage: Lenient<Map<String, Value>>,
}

/// A chat message object (Claude `message`, the generic fallback).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct MessageObject<'a> {
    #[serde(borrow)]
    pub(super) role: Text<'a>,
    #[serde(borrow)]
    pub(super) content: Lenient<Content<'a>>,
}

/// One part of a content array.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Part<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Text<'a>,
    #[serde(borrow)]
    pub(super) text: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ErrorObject<'a> {
    #[serde(borrow)]
    pub(super) message: Text<'a>,
}

/// `message` is text on Codex and Gemini `error` lines and an object on Claude lines.
pub(super) enum MessageField<'a> {
    Text(Cow<'a, str>),
    Object(MessageObject<'a>),
}

/// `error` as a string, or the `message` of an error object.
pub(super) struct ErrorText<'a>(pub(super) Cow<'a, str>);

/// The text parts of a `content`: a string, or the `text` of each text part of an array.
pub(super) struct Content<'a>(pub(super) Vec<Cow<'a, str>>);

/// A string, or the strings of an array (Claude `errors`).
pub(super) struct TextList<'a>(pub(super) Vec<Cow<'a, str>>);

/// Objects read field by field through their own (lenient) derived reader.
macro_rules! accept_object {
    ($($name:ident $(<$lifetime:lifetime>)?),* $(,)?) => {$(
        impl<'de: 'a, 'a> FromJson<'de> for $name $(<$lifetime>)? {
            const EXPECTED: &'static str = "an object";

            fn from_map<W: Walk, A: MapAccess<'de>>(map: A) -> Result<Field<Self>, A::Error> {
                Self::deserialize(MapAccessDeserializer::new(map)).map(Field::Value)
            }
        }
    )*};
}

accept_object!(
    Item<'a>,
    Event<'a>,
    TokenInfo,
    Response,
    MessageObject<'a>,
    Part<'a>
);

impl<'de: 'a, 'a> FromJson<'de> for MessageField<'a> {
    const EXPECTED: &'static str = "a string or an object";
    const TAKES_TEXT: bool = true;

    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        Some(MessageField::Text(text))
    }

    fn from_map<W: Walk, A: MapAccess<'de>>(map: A) -> Result<Field<Self>, A::Error> {
        MessageObject::deserialize(MapAccessDeserializer::new(map))
            .map(|object| Field::Value(MessageField::Object(object)))
    }
}

impl<'de: 'a, 'a> FromJson<'de> for ErrorText<'a> {
    const EXPECTED: &'static str = "a string or an object";
    const TAKES_TEXT: bool = true;

    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        Some(ErrorText(text))
    }

    fn from_map<W: Walk, A: MapAccess<'de>>(map: A) -> Result<Field<Self>, A::Error> {
        let error = ErrorObject::deserialize(MapAccessDeserializer::new(map))?;
        Ok(error
            .message
            .0
            .map_or(Field::Wrong("an object without a message"), |text| {
                Field::Value(ErrorText(text))
            }))
    }
}

impl<'de: 'a, 'a> FromJson<'de> for Content<'a> {
    const EXPECTED: &'static str = "a string or an array";
    const TAKES_TEXT: bool = true;

    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        Some(Content(vec![text]))
    }

    fn from_seq<W: Walk, A: SeqAccess<'de>>(mut seq: A) -> Result<Field<Self>, A::Error> {
        let mut parts = Vec::new();
        while let Some(part) = seq.next_element::<Lenient<Part<'a>>>()? {
            let Some(part) = part.0 else { continue };
            // Tool calls, tool results, images and thinking are not the answer.
            let is_text = matches!(part.kind.0.as_deref(), Some("text" | "output_text"));
            if let (true, Some(text)) = (is_text, part.text.0) {
                parts.push(text);
            }
        }
        Ok(Field::Value(Content(parts)))
    }
}

impl<'de: 'a, 'a> FromJson<'de> for TextList<'a> {
    const EXPECTED: &'static str = "a string or an array";
    const TAKES_TEXT: bool = true;

    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        Some(TextList(vec![text]))
    }

    fn from_seq<W: Walk, A: SeqAccess<'de>>(mut seq: A) -> Result<Field<Self>, A::Error> {
        let mut texts = Vec::new();
        while let Some(text) = seq.next_element::<Lenient<Cow<'a, str>>>()? {
            texts.extend(text.0);
        }
        Ok(Field::Value(TextList(texts)))
    }
}
