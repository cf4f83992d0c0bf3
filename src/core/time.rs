//! time: instants as whole milliseconds since the Unix epoch, RFC 3339 in and out, durations.
//!
//! Every instant flatline handles is an `i64` of milliseconds (truncated, never rounded), so
//! ages are exact integers and two runs over the same inputs give the same output. Reading
//! the real clock happens only in the shell (`proc::now_ms`); the core takes `now` as a
//! parameter.

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
    // Starts with a digit and ends with `Z`: no surrounding space can pass the fast path.
    if let Some(ms) = parse_utc_fast(text.as_bytes()) {
        return Some(ms);
    }
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

/// The form orchestrators write, `YYYY-MM-DDTHH:MM:SS[.f…]Z` with at most nine fraction
/// digits and no leap second, without the general parser; `None` sends anything else (valid
/// or not) to it. A unit test holds the two to the same answers.
fn parse_utc_fast(text: &[u8]) -> Option<Millis> {
    if text.len() < 20 || text[text.len() - 1] != b'Z' {
        return None;
    }
    let number = |from: usize, to: usize| digits(&text[from..to]);
    if text[4] != b'-'
        || text[7] != b'-'
        || text[10] != b'T'
        || text[13] != b':'
        || text[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let millis = match text.len() {
        20 => 0,
        // `.` and one to nine digits, truncated to milliseconds.
        len @ 22..=30 if text[19] == b'.' => {
            let digits = len - 21;
            let fraction = number(20, len - 1)?;
            match digits {
                1 => fraction * 100,
                2 => fraction * 10,
                _ => fraction / 10i64.pow(digits as u32 - 3),
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// The value of a run of ASCII digits (at most 18 of them: no overflow).
#[inline]
fn digits(bytes: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + i64::from(digit);
    }
    Some(value)
}

/// A proleptic Gregorian date to days since the epoch (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats UTC milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the one form flatline writes.
pub fn format_rfc3339(ms: Millis) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, ms);
    out
}

/// Appends the RFC 3339 form of `ms` to `out` (no allocation of its own).
pub fn write_rfc3339(out: &mut String, ms: Millis) {
    let text = rfc3339_bytes(ms);
    // Only ASCII digits and separators.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// Appends the RFC 3339 form of `ms` to a byte buffer.
pub fn write_rfc3339_bytes(out: &mut Vec<u8>, ms: Millis) {
    out.extend_from_slice(&rfc3339_bytes(ms));
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, digit by digit.
fn rfc3339_bytes(ms: Millis) -> [u8; 24] {
    // Every instant flatline writes comes from a parse, the clock or an mtime; clamping keeps
    // even a file stamped in year 20000 from producing text that is not RFC 3339.
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut digits = |at: usize, width: usize, mut value: i64| {
        for i in (at..at + width).rev() {
            // The clamp keeps every value in 0..10^width.
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    digits(0, 4, year);
    digits(5, 2, month);
    digits(8, 2, day);
    digits(11, 2, day_secs / 3600);
    digits(14, 2, (day_secs % 3600) / 60);
    digits(17, 2, day_secs % 60);
    digits(20, 3, millis);
    text
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

/// Examples for messages about durations.
pub const DURATION_EXAMPLES: &str = "e.g. 45s, 4min, 1m30s, 1h 30min, 1500ms";

/// systemd's units (`extract_multiplier` in systemd's time-util.c), in microseconds and in
/// systemd's order: the first prefix that matches wins, so `ms` is never read as `m` + `s`
/// and `min` is never read as `m` + `in`. A month is 30.44 days and a year 365.25 days, as
/// systemd defines them.
const UNITS: &[(&str, u64)] = &[
    ("seconds", 1_000_000),
    ("second", 1_000_000),
    ("sec", 1_000_000),
    ("s", 1_000_000),
    ("minutes", 60_000_000),
    ("minute", 60_000_000),
    ("min", 60_000_000),
    ("months", 2_629_800_000_000),
    ("month", 2_629_800_000_000),
    ("M", 2_629_800_000_000),
    ("msec", 1_000),
    ("ms", 1_000),
    ("m", 60_000_000),
    ("hours", 3_600_000_000),
    ("hour", 3_600_000_000),
    ("hr", 3_600_000_000),
    ("h", 3_600_000_000),
    ("days", 86_400_000_000),
    ("day", 86_400_000_000),
    ("d", 86_400_000_000),
    ("weeks", 604_800_000_000),
    ("week", 604_800_000_000),
    ("w", 604_800_000_000),
    ("years", 31_557_600_000_000),
    ("year", 31_557_600_000_000),
    ("y", 31_557_600_000_000),
    ("usec", 1),
    ("us", 1),
    ("\u{3bc}s", 1),
    ("\u{b5}s", 1),
];

/// systemd's whitespace for time spans (`WHITESPACE`: space, tab, newline, carriage return).
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Parses a systemd time span (systemd.time(7), the grammar of systemd's `parse_sec`) into
/// microseconds: one or more numbers, each with an optional fraction and an optional unit,
/// with or without spaces between them and between a number and its unit (`1500ms`, `45s`,
/// `1.5s`, `4min`, `4 min`, `1m30s`, `1h 30min`, `2d`, `1w`); a number without a unit is
/// seconds. Fraction digits finer than a microsecond are dropped, as systemd drops them.
/// Negative values, unknown units, an empty text and sums past systemd's range are refused;
/// so is `infinity`, which systemd accepts but which no flatline option means.
pub fn parse_timespan_us(text: &str) -> Result<u64, String> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut total: u64 = 0;
    let mut something = false;
    let too_large = || "too large".to_string();
    loop {
        while at < bytes.len() && is_space(bytes[at]) {
            at += 1;
        }
        if at == bytes.len() {
            if !something {
                return Err("empty".to_string());
            }
            return Ok(total);
        }
        if bytes[at..].starts_with(b"infinity") {
            return Err("infinity is not accepted here".to_string());
        }
        // strtoll's grammar, as systemd uses it: an optional '+', then digits; '-' refused.
        let number_start = at;
        if bytes[at] == b'-' {
            return Err("negative".to_string());
        }
        if bytes[at] == b'+' {
            at += 1;
        }
        let digits_start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        let whole_digits = &text[digits_start..at];
        let mut fraction = "";
        if at < bytes.len() && bytes[at] == b'.' {
            let fraction_start = at + 1;
            at = fraction_start;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
            fraction = &text[fraction_start..at];
            // Like systemd: "3.", "3.s" and "3. 1" are refused.
            if fraction.is_empty() {
                return Err(format!(
                    "'{}' has a '.' without digits after it",
                    &text[number_start..at]
                ));
            }
        } else if whole_digits.is_empty() {
            return Err(format!(
                "expected a number at '{}'",
                crate::core::text::escape_control(&text[number_start..])
            ));
        }
        let whole: u64 = if whole_digits.is_empty() {
            0
        } else {
            whole_digits.parse().map_err(|_| too_large())?
        };
        let after_number = at;
        let mut unit_at = at;
        while unit_at < bytes.len() && is_space(bytes[unit_at]) {
            unit_at += 1;
        }
        let (multiplier, unit_len) = UNITS
            .iter()
            .find(|(name, _)| text[unit_at..].starts_with(name))
            .map_or((1_000_000, 0), |(name, us)| (*us, name.len()));
        if unit_len == 0 && unit_at == after_number && unit_at < bytes.len() {
            // "12.34.56" or "4x": what follows the number is neither a unit nor a space.
            let rest = &text[unit_at..];
            let unit: String = rest
                .chars()
                .take_while(|c| !c.is_ascii_digit() && !c.is_whitespace())
                .collect();
            return Err(format!(
                "unknown unit '{}'",
                crate::core::text::escape_control(&unit)
            ));
        }
        at = if unit_len == 0 {
            unit_at
        } else {
            unit_at + unit_len
        };
        // systemd's range: the sum stays below USEC_INFINITY (u64::MAX).
        let mut part = whole.checked_mul(multiplier).ok_or_else(too_large)?;
        let mut scale = multiplier / 10;
        for digit in fraction.bytes() {
            part = part
                .checked_add(u64::from(digit - b'0') * scale)
                .ok_or_else(too_large)?;
            scale /= 10;
        }
        total = total
            .checked_add(part)
            .filter(|total| *total < u64::MAX)
            .ok_or_else(too_large)?;
        something = true;
    }
}

/// Parses a duration as every flatline option takes it: a systemd time span
/// (`parse_timespan_us`), at flatline's resolution of a millisecond. A part of a millisecond
/// rounds up to the next whole one, so a threshold is never shorter than written and a
/// non-zero span never becomes 0 (`1500us` is 2ms, `1us` is 1ms).
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    let shown = crate::core::text::escape_control(text);
    let us = parse_timespan_us(text).map_err(|problem| {
        format!("invalid duration '{shown}': {problem} (a systemd time span, {DURATION_EXAMPLES})")
    })?;
    Millis::try_from(us.div_ceil(1000))
        .map_err(|_| format!("invalid duration '{shown}': too large"))
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
    fn the_fast_path_agrees_with_the_general_parser() {
        let general = |text: &str| {
            OffsetDateTime::parse(text, &Rfc3339)
                .ok()
                .and_then(|t| Millis::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok())
                .filter(|ms| (MIN_MS..=MAX_MS).contains(ms))
        };
        let mut texts = vec![
            "2026-11-22T08:00:00Z".to_string(),
            "2026-11-22T08:00:00.1Z".to_string(),
            "2026-11-22T08:00:00.12Z".to_string(),
            "2026-11-22T08:00:00.123Z".to_string(),
            "2026-11-22T08:00:00.123456789Z".to_string(),
            "2026-11-22T08:00:00.1234567890Z".to_string(),
            "2026-11-22T08:00:00.Z".to_string(),
            "2026-11-22t08:00:00z".to_string(),
            "2026-11-22T08:00:00+00:00".to_string(),
            "2026-11-22T08:00Z".to_string(),
            "2026-11-22T08:00:0aZ".to_string(),
            "2026-11-22T08:00:+1Z".to_string(),
            "2026-11-22 08:00:00Z".to_string(),
            "1969-12-31T23:59:59.999Z".to_string(),
            "0000-01-01T00:00:00Z".to_string(),
            "9999-12-31T23:59:59.999999999Z".to_string(),
        ];
        // Every month's last days, in common, leap and century years, and the edges of each
        // time field.
        for year in [1900, 1970, 2000, 2023, 2024, 2100] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    texts.push(format!("{year:04}-{month:02}-{day:02}T23:59:59.5Z"));
                }
            }
        }
        for (hour, minute, second) in [(24, 0, 0), (0, 60, 0), (0, 0, 60), (23, 59, 59)] {
            texts.push(format!("2024-02-29T{hour:02}:{minute:02}:{second:02}Z"));
        }
        for text in &texts {
            assert_eq!(parse_rfc3339(text), general(text), "{text}");
            if let Some(fast) = parse_utc_fast(text.as_bytes()) {
                assert_eq!(Some(fast), general(text), "fast path on {text}");
            }
        }
        assert!(parse_utc_fast(b"2026-11-22T08:00:00.123Z").is_some());
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
    fn durations_are_systemd_time_spans() {
        let second = 1000;
        let minute = 60 * second;
        let hour = 60 * minute;
        let day = 24 * hour;
        for (text, expected) in [
            ("1500ms", 1500),
            ("45s", 45 * second),
            ("45", 45 * second),
            ("0", 0),
            ("0s", 0),
            ("1.5s", 1500),
            ("1.5", 1500),
            (".5s", 500),
            ("2m", 2 * minute),
            ("4min", 4 * minute),
            ("4 min", 4 * minute),
            ("4minutes", 4 * minute),
            ("1minute", minute),
            ("1m30s", 90 * second),
            ("1m 30s", 90 * second),
            ("1h 30min", 90 * minute),
            ("  1h\t30min  ", 90 * minute),
            ("1h30m", 90 * minute),
            ("2h", 2 * hour),
            ("2hr", 2 * hour),
            ("2hours", 2 * hour),
            ("1hour", hour),
            ("2d", 2 * day),
            ("1day", day),
            ("3days", 3 * day),
            ("1w", 7 * day),
            ("2weeks", 14 * day),
            ("1week", 7 * day),
            ("1M", 2_629_800_000),
            ("1month", 2_629_800_000),
            ("2months", 2 * 2_629_800_000),
            ("1y", 31_557_600_000),
            ("1year", 31_557_600_000),
            ("2years", 2 * 31_557_600_000),
            ("1sec", second),
            ("1second", second),
            ("2seconds", 2 * second),
            ("5msec", 5),
            ("1s500ms", 1500),
            ("1 2", 3 * second),
            ("+5s", 5 * second),
            ("1.25min", 75 * second),
            ("0.001s", 1),
            // Sub-millisecond parts round up: never shorter than written.
            ("1500us", 2),
            ("1usec", 1),
            ("1000us", 1),
            ("1\u{b5}s", 1),
            ("1\u{3bc}s", 1),
            ("0.0000001s", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn durations_refuse_what_systemd_refuses() {
        for (text, problem) in [
            ("", "empty"),
            ("   ", "empty"),
            ("-1s", "negative"),
            ("-0", "negative"),
            ("1s -1s", "negative"),
            ("1x", "unknown unit 'x'"),
            ("4mins", "expected a number"),
            ("1sx", "expected a number"),
            ("12.34.56", "unknown unit '.'"),
            ("3.", "without digits"),
            ("3.s", "without digits"),
            ("3. 1", "without digits"),
            ("s", "expected a number"),
            ("1S", "unknown unit 'S'"),
            ("1ns", "unknown unit 'ns'"),
            ("infinity", "infinity"),
            ("99999999999999999999", "too large"),
            ("18446744073709551615us", "too large"),
            ("600000y", "too large"),
            ("300000y 300000y", "too large"),
        ] {
            let message = parse_duration(text).unwrap_err();
            assert!(message.contains(problem), "{text:?}: {message}");
            assert!(message.contains("e.g. 45s, 4min"), "{text:?}: {message}");
        }
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
