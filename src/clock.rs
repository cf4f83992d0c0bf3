//! clock: instants as whole milliseconds since the Unix epoch, RFC 3339 in and out, durations.
//!
//! Every instant flatline handles is an `i64` of milliseconds (truncated, never rounded), so
//! ages are exact integers and two runs over the same inputs give the same output. Reading
//! the real clock happens only in the shell (`now_ms`); the core takes `now` as a parameter.

use std::fmt::Write as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

/// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the instants RFC 3339 can write.
pub const MIN_MS: Millis = -62_167_219_200_000;
pub const MAX_MS: Millis = 253_402_300_799_999;

/// Parses an RFC 3339 timestamp (any offset) into UTC milliseconds, truncating sub-millisecond
/// digits. `None` for anything that is not a valid RFC 3339 instant (including years past
/// 9999, and a leap second on a day that has none).
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    // The grammar has no room for surrounding spaces; reject them rather than guess.
    if text.len() > 64 || text.trim() != text {
        return None;
    }
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let nanos = parsed.unix_timestamp_nanos();
    // An offset can carry a valid text out of the years RFC 3339 has ("0000-01-01T00:00
    // +00:01" is in year -1): such an instant could not be written back.
    Millis::try_from(nanos.div_euclid(1_000_000))
        .ok()
        .filter(|ms| (MIN_MS..=MAX_MS).contains(ms))
}

/// Formats UTC milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the one form flatline writes.
pub fn format_rfc3339(ms: Millis) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, ms);
    out
}

/// Appends the RFC 3339 form of `ms` to `out` (no allocation of its own).
pub fn write_rfc3339(out: &mut String, ms: Millis) {
    // Every instant flatline writes comes from a parse, the clock or an mtime; clamping keeps
    // even a file stamped in year 20000 from producing text that is not RFC 3339.
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        day_secs / 3600,
        (day_secs % 3600) / 60,
        day_secs % 60
    );
}

/// Days since the epoch to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The real wall clock, in milliseconds. Only the shell calls this, once per run.
pub fn now_ms() -> Millis {
    let now = std::time::SystemTime::now();
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => Millis::try_from(since.as_millis()).unwrap_or(Millis::MAX),
        Err(before) => -Millis::try_from(before.duration().as_millis()).unwrap_or(Millis::MAX),
    }
}

/// Parses a duration as flatline's options take it: an integer followed by `ms`, `s`, `m` or
/// `h` (`1500ms`, `45s`, `2m`, `1h`). A bare number is refused: the unit is never guessed.
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "invalid duration '{text}': expected a whole number and a unit, e.g. 1500ms, 45s, 2m, 1h"
        ));
    }
    let scale: Millis = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => {
            return Err(format!(
                "invalid duration '{text}': missing unit (ms, s, m or h), e.g. {text}s"
            ));
        }
        _ => {
            return Err(format!(
                "invalid duration '{text}': unknown unit '{unit}' (use ms, s, m or h)"
            ));
        }
    };
    digits
        .parse::<Millis>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("invalid duration '{text}': too large"))
}

/// Renders milliseconds as the shortest exact duration (`45s`, `1500ms`, `2m`), for help
/// texts and messages.
pub fn format_duration(ms: Millis) -> String {
    if ms != 0 && ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms != 0 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_truncates_to_milliseconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.9999Z"), Some(1999));
        assert_eq!(parse_rfc3339("1970-01-01T02:00:00+02:00"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(
            parse_rfc3339("2026-11-22T08:00:00.123456789Z"),
            Some(1_795_334_400_123)
        );
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for text in [
            "",
            "yesterday",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-11-22T08:00:00",
            "10000-01-01T00:00:00Z",
            " 2026-11-22T08:00:00Z",
            "2026-01-01T23:59:60Z",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
    }

    #[test]
    fn offsets_cannot_carry_an_instant_out_of_the_writable_years() {
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00+00:01"), None);
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59-23:59"), None);
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(MIN_MS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Some(MAX_MS));
        assert_eq!(format_rfc3339(MIN_MS - 1), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(Millis::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_real_leap_second_is_the_last_millisecond_of_its_minute() {
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            Some(1_483_228_799_999)
        );
    }

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_795_334_400_123),
            "2026-11-22T08:00:00.123Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for ms in [
            0,
            1,
            86_399_999,
            951_782_400_000,
            1_795_334_400_123,
            253_402_300_799_999,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("1500ms"), Ok(1500));
        assert_eq!(parse_duration("45s"), Ok(45_000));
        assert_eq!(parse_duration("2m"), Ok(120_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert!(parse_duration("45").unwrap_err().contains("missing unit"));
        assert!(parse_duration("4x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn durations_render_exactly() {
        assert_eq!(format_duration(45_000), "45s");
        assert_eq!(format_duration(1500), "1500ms");
        assert_eq!(format_duration(120_000), "2m");
        assert_eq!(format_duration(3_600_000), "1h");
        assert_eq!(format_duration(0), "0s");
    }
}
