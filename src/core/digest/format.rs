//! The agent CLIs whose event shapes the digest knows.

/// The agent CLI whose event shape a line has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Codex CLI `exec --json`.
    Codex,
    /// Legacy Codex `exec` output and Codex session rollout files.
    CodexLegacy,
    /// Claude Code `-p --output-format stream-json`.
    Claude,
    /// Gemini CLI `--output-format stream-json`.
    Gemini,
    /// Kimi CLI `--print --output-format stream-json`.
    Kimi,
    /// No specific shape, only the generic fallbacks (assistant message, usage).
    Generic,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Codex => "codex",
            Format::CodexLegacy => "codex-legacy",
            Format::Claude => "claude",
            Format::Gemini => "gemini",
            Format::Kimi => "kimi",
            Format::Generic => "generic",
        }
    }

    /// Formats whose CLI always ends a finished turn with a terminal event, so a stream
    /// without one means the worker died mid-turn.
    pub fn has_terminal_events(self) -> bool {
        matches!(self, Format::Codex | Format::Claude | Format::Gemini)
    }
}
