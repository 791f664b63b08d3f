//! Timestamps at the API edge: stored times are unix nanoseconds; the API shows them as RFC 3339
//! in UTC with all nine fractional digits (so text order is time order and nothing is rounded) and
//! accepts RFC 3339 or unix milliseconds from clients.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Why a client timestamp was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Neither an RFC 3339 timestamp nor a non-negative integer.
    #[error("expected an RFC 3339 timestamp or unix milliseconds")]
    Syntax,
    /// A valid timestamp outside what unix nanoseconds in a `u64` can hold (before 1970 or after
    /// the year 2554).
    #[error("timestamp is outside 1970-01-01T00:00:00Z to 2554-07-21T23:34:33Z")]
    OutOfRange,
    /// An integer that only makes sense in another unit: read as milliseconds it would fall in
    /// the first years of 1970 or tens of millennia from now.
    #[error("expected unix milliseconds; this looks like unix {unit}")]
    Unit {
        /// The unit the value looks like.
        unit: &'static str,
    },
}

/// Unix milliseconds below this (1973-03-03) and at least [`SECONDS_FROM`] are unix seconds of
/// 2001 to 5138 misread; 0 and other small values stay valid milliseconds.
const SECONDS_BELOW: u64 = 100_000_000_000;
const SECONDS_FROM: u64 = 1_000_000_000;
/// Unix milliseconds from this on (year 33658) are micro- or nanoseconds misread.
const FINER_FROM: u64 = 1_000_000_000_000_000;

/// Formats unix nanoseconds as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn format_unix_nanos(unix_nano: u64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    // Every u64 nanosecond count lies between 1970 and 2554, well inside what `time` represents and
    // formats with a four-digit year, so neither step can fail; the fallback only keeps this total.
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nano))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Parses a client timestamp: an integer is unix milliseconds, anything else must be RFC 3339.
/// An integer that can only be seconds, micro- or nanoseconds read as milliseconds is refused
/// with a message naming the unit it looks like.
///
/// In a URL query an unescaped `+` decodes to a space, so `2024-05-01T10:00:00+02:00` typed into a
/// URL arrives as `2024-05-01T10:00:00 02:00`; a space is never valid in an RFC 3339 offset, so a
/// value that fails to parse is retried with its last space read as `+`.
pub fn parse_timestamp(value: &str) -> Result<u64, TimestampError> {
    if let Some(digits) = value.strip_prefix('-') {
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TimestampError::OutOfRange);
        }
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let ms = value
            .parse::<u64>()
            .map_err(|_| TimestampError::OutOfRange)?;
        if (SECONDS_FROM..SECONDS_BELOW).contains(&ms) {
            return Err(TimestampError::Unit { unit: "seconds" });
        }
        if ms >= FINER_FROM {
            return Err(TimestampError::Unit {
                unit: "micro- or nanoseconds",
            });
        }
        return ms.checked_mul(1_000_000).ok_or(TimestampError::OutOfRange);
    }
    let parsed = OffsetDateTime::parse(value, &Rfc3339).or_else(|err| match value.rfind(' ') {
        Some(i) => OffsetDateTime::parse(&format!("{}+{}", &value[..i], &value[i + 1..]), &Rfc3339),
        None => Err(err),
    });
    let nanos = parsed
        .map_err(|_| TimestampError::Syntax)?
        .unix_timestamp_nanos();
    u64::try_from(nanos).map_err(|_| TimestampError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_nine_fraction_digits_in_utc() {
        assert_eq!(format_unix_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_unix_nanos(1_714_557_600_123_456_789),
            "2024-05-01T10:00:00.123456789Z"
        );
        assert_eq!(
            format_unix_nanos(u64::MAX),
            "2554-07-21T23:34:33.709551615Z"
        );
    }

    #[test]
    fn integers_are_unix_milliseconds() {
        assert_eq!(parse_timestamp("0"), Ok(0));
        assert_eq!(
            parse_timestamp("1714557600123"),
            Ok(1_714_557_600_123_000_000)
        );
        assert_eq!(
            parse_timestamp("99999999999999999999"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(parse_timestamp("-5"), Err(TimestampError::OutOfRange));
        assert_eq!(parse_timestamp("999999999"), Ok(999_999_999_000_000));
    }

    #[test]
    fn integers_in_another_unit_are_named() {
        // 2024-05-01T10:00:00Z in seconds, microseconds and nanoseconds.
        for (value, unit) in [
            ("1714557600", "seconds"),
            ("1714557600000000", "micro- or nanoseconds"),
            ("1714557600000000000", "micro- or nanoseconds"),
        ] {
            let err = parse_timestamp(value).unwrap_err();
            assert_eq!(err, TimestampError::Unit { unit }, "{value}");
            assert_eq!(
                err.to_string(),
                format!("expected unix milliseconds; this looks like unix {unit}")
            );
        }
    }

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        assert_eq!(
            parse_timestamp("2024-05-01T10:00:00.123456789Z"),
            Ok(1_714_557_600_123_456_789)
        );
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00+02:00"),
            Ok(1_714_557_600_000_000_000)
        );
        // `+` that a URL query decoded to a space
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00 02:00"),
            Ok(1_714_557_600_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2024-05-01T08:00:00-02:00"),
            Ok(1_714_557_600_000_000_000)
        );
    }

    #[test]
    fn round_trips_formatted_output() {
        let t = 1_714_557_600_000_000_001;
        assert_eq!(parse_timestamp(&format_unix_nanos(t)), Ok(t));
    }

    #[test]
    fn rejects_garbage_and_pre_epoch_times() {
        for bad in [
            "",
            "garbage",
            "2024-05-01",
            "1.5",
            "2024-13-01T00:00:00Z",
            "１２３",
            " ",
        ] {
            assert_eq!(parse_timestamp(bad), Err(TimestampError::Syntax), "{bad:?}");
        }
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59Z"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59Z"),
            Err(TimestampError::OutOfRange)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_rejected(s in proptest::prelude::any::<String>()) {
            let _ = parse_timestamp(&s);
        }

        #[test]
        fn every_u64_round_trips(t in proptest::prelude::any::<u64>()) {
            let text = format_unix_nanos(t);
            proptest::prop_assert_eq!(text.len(), 30);
            proptest::prop_assert_eq!(parse_timestamp(&text), Ok(t));
        }
    }
}
