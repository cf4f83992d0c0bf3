//! The output formats a command can print.

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Ndjson,
    Json,
    Tsv,
    Prometheus,
}

impl Format {
    pub(crate) fn parse(text: &str) -> Option<Format> {
        match text {
            "text" => Some(Format::Text),
            "ndjson" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            "tsv" => Some(Format::Tsv),
            "prometheus" => Some(Format::Prometheus),
            _ => None,
        }
    }
}
