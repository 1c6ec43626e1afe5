//! Wall-clock time in the forms the product uses: milliseconds since the epoch inside, RFC 3339
//! UTC strings with milliseconds outside, and the accepted input spellings of SPEC §2.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-11-22T10:00:00.000Z` for a millisecond timestamp.
pub fn format_ms(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses RFC 3339, `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DD HH:MM:SS` (UTC) into milliseconds.
pub fn parse_datetime_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc).timestamp_millis());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc().timestamp_millis());
        }
    }
    let date = parse_date(text)?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// Parses `YYYY-MM-DD` strictly.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The normalised stored form of a datetime: RFC 3339 UTC with milliseconds.
pub fn normalise_datetime(text: &str) -> Option<String> {
    parse_datetime_ms(text).map(format_ms)
}
