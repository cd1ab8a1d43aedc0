//! Wall-clock time as the WIT carries it (milliseconds since the Unix
//! epoch, UTC) and as JSON carries it (RFC 3339).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The last millisecond RFC 3339 can write with a four-digit year
/// (9999-12-31T23:59:59.999Z).
const MAX_RFC3339_MS: i64 = 253_402_300_799_999;
/// The first (0000-01-01T00:00:00.000Z).
const MIN_RFC3339_MS: i64 = -62_167_219_200_000;

/// Now, in milliseconds since the Unix epoch. Inside the host this reads the
/// WASI wall clock.
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// `duration` in whole milliseconds, rounded up so that a short wait is not
/// lost; saturates at `u64::MAX`.
pub(crate) fn ceil_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros().div_ceil(1_000)).unwrap_or(u64::MAX)
}

/// `ms` as an RFC 3339 UTC time with milliseconds, e.g.
/// `2026-01-31T12:00:00.000Z`. Times before year 0 or after 9999 are
/// clamped to those ends.
pub fn to_rfc3339(ms: i64) -> String {
    let ms = ms.clamp(MIN_RFC3339_MS, MAX_RFC3339_MS);
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("within years 0 to 9999")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time (`2026-01-31T12:00:00Z`, any offset such as
/// `+02:00`, with or without fractional seconds; a space for the `T`, and
/// no offset at all, meaning UTC, are accepted too) into milliseconds since
/// the Unix epoch (negative before 1970). `None` when `text` is not such a
/// time.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let ms = 1_769_860_800_123; // 2026-01-31T12:00:00.123Z
        assert_eq!(to_rfc3339(ms), "2026-01-31T12:00:00.123Z");
        assert_eq!(parse_rfc3339("2026-01-31T12:00:00.123Z"), Some(ms));
        assert_eq!(parse_rfc3339("2026-01-31T12:00:00Z"), Some(ms - 123));
        assert_eq!(parse_rfc3339(" 2026-01-31 12:00:00 "), Some(ms - 123));
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn offsets_and_times_before_1970_are_read() {
        let noon = parse_rfc3339("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-01-31T14:00:00+02:00"), Some(noon));
        assert_eq!(parse_rfc3339("2026-01-31t11:30:00.000-00:30"), Some(noon));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1_000));
        assert_eq!(parse_rfc3339("2026-01-31T12:00:00+25:00"), None);
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339(""), None);
    }

    #[test]
    fn clamps_what_rfc3339_cannot_write() {
        assert_eq!(to_rfc3339(-5), "1969-12-31T23:59:59.995Z");
        assert_eq!(to_rfc3339(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(to_rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn now_is_after_2025() {
        assert!(now_ms() > parse_rfc3339("2025-01-01T00:00:00Z").unwrap());
    }
}
