//! RFC 3339 timestamps for the JSON form of events, to and from Unix milliseconds.
//! Millisecond precision is exact both ways, which signing needs: the device signs
//! the milliseconds, the JSON carries the text.
//!
//! The calendar and the grammar are the `time` crate's (`Rfc3339`); on top of it, three
//! refusals keep the text one reading of one instant: the date and the time are joined
//! by `T` (RFC 3339 lets applications use a space, we do not), the second is never 60
//! (`time` reads a leap second as the nanosecond before it), and there are 1 to 3
//! fractional digits (more would be rounded away from what the device signed).

use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const EXAMPLE: &str = "2026-11-25T08:30:00.123+08:00";

/// What `format_rfc3339` writes: always milliseconds, then the offset (or `Z`).
const LOCAL: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]");
const OFFSET: &[BorrowedFormatItem<'_>] =
    format_description!("[offset_hour sign:mandatory]:[offset_minute]");

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]` followed by `Z` or `±HH:MM` into Unix ms.
/// More than three fractional digits are refused rather than rounded.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = |why: &dyn std::fmt::Display| {
        format!("'{s}' is not an RFC 3339 time like {EXAMPLE}: {why}")
    };
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| bad(&e))?;
    // `time` accepted it, so `s` is `YYYY-MM-DD?HH:MM:SS[.d+](Z|z|±HH:MM)` in ASCII.
    let b = s.as_bytes();
    if !matches!(b[10], b'T' | b't') {
        return Err(bad(&"the date and the time are joined by T"));
    }
    if &b[17..19] == b"60" {
        return Err(bad(&"the second is 00 to 59 (no leap seconds)"));
    }
    if b[19] == b'.' {
        let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 3 {
            return Err(format!(
                "'{s}': give 1 to 3 fractional digits (millisecond precision)"
            ));
        }
    }
    Ok(t.unix_timestamp() * 1000 + i64::from(t.millisecond()))
}

/// Formats Unix ms as RFC 3339 in the given `±HH:MM` offset, with milliseconds;
/// `Z` for an empty offset. An offset that is not `±HH:MM` (hours up to 23) is not
/// written: the time is then given in UTC with `Z`, so the text still names the
/// instant. An instant outside the years -9999 to 9999 has no such text and is
/// written as its milliseconds.
pub fn format_rfc3339(ms: i64, offset_text: &str) -> String {
    // Hours up to 23, as `parse_rfc3339` reads them (`UtcOffset` goes to 25).
    let offset = UtcOffset::parse(offset_text, OFFSET)
        .ok()
        .filter(|o| o.whole_hours().abs() <= 23);
    let local = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.checked_to_offset(offset.unwrap_or(UtcOffset::UTC)));
    let text = local.and_then(|t| {
        let mut text = t.format(LOCAL).ok()?;
        // The offset as given (it parsed, so it is `±HH:MM`): `-00:00` stays itself.
        text.push_str(if offset.is_some() { offset_text } else { "Z" });
        Some(text)
    });
    text.unwrap_or_else(|| format!("{ms} ms since 1970-01-01T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00.5Z"), Ok(951_868_800_500));
        assert_eq!(
            parse_rfc3339("2026-11-25T18:00:00.123+08:00"),
            Ok(1_795_600_800_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T05:00:00.123-05:00"),
            Ok(1_795_600_800_123)
        );
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for s in [
            "2026-11-25 10:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-25T10:00:00",
            "2026-11-25T10:00:00.1234Z",
            "2026-11-25T24:00:00Z",
            "yesterday",
            // Found by fuzzing (fuzz/): a character across byte 3 of the offset.
            "0000-00-00T00:00:00+0\u{e9}00",
            "2026-11-25T04:30:00.123-05\u{e9}0",
        ] {
            assert!(parse_rfc3339(s).is_err(), "{s}");
        }
    }

    #[test]
    fn formats_and_parses_back_exactly() {
        for ms in [0, 1_795_600_800_123, 951_868_800_500, 4_102_444_799_999] {
            for off in ["+08:00", "-05:30", "+00:00"] {
                let s = format_rfc3339(ms, off);
                assert_eq!(parse_rfc3339(&s), Ok(ms), "{s}");
                assert!(s.ends_with(off));
            }
        }
        assert_eq!(
            format_rfc3339(1_795_600_800_123, "+08:00"),
            "2026-11-25T18:00:00.123+08:00"
        );
    }

    #[test]
    fn refuses_what_time_alone_would_take() {
        for s in [
            // RFC 3339 lets an application join date and time by a space; `time` takes any byte.
            "2026-11-25x10:00:00Z",
            // A real leap second, which `time` reads as 23:59:59.999999999.
            "2016-12-31T23:59:60Z",
            "2026-11-25T10:00:00.123456789Z",
            "2026-11-25T10:00:00.Z",
            "2026-11-25T10:00:00+08",
            "2026-11-25T10:00:00+0800",
            "2026-11-25T10:00:00+24:00",
            "2026-11-25T10:00:00+08:60",
            "2026-11-25T10:00:00.123+08:00 ",
            " 2026-11-25T10:00:00Z",
            "+2026-11-25T10:00:00Z",
            "20261125T100000Z",
            "2026-11-25",
            "",
        ] {
            assert!(parse_rfc3339(s).is_err(), "{s}");
        }
    }

    #[test]
    fn takes_what_rfc3339_allows() {
        for (s, ms) in [
            ("2026-11-25t10:00:00z", 1_795_600_800_000),
            ("2026-11-25T10:00:00-00:00", 1_795_600_800_000),
            ("2026-11-25T10:00:00.1+00:00", 1_795_600_800_100),
            ("2026-11-25T10:00:00.12Z", 1_795_600_800_120),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("1969-12-31T23:59:59.999Z", -1),
            ("0000-01-01T00:00:00Z", -62_167_219_200_000),
            ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
            ("2026-11-25T23:59:59+23:59", 1_795_564_859_000),
        ] {
            assert_eq!(parse_rfc3339(s), Ok(ms), "{s}");
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let month = parse_rfc3339("2026-13-01T00:00:00Z").unwrap_err();
        assert!(
            month.contains("month") && month.contains("2026-13-01"),
            "{month}"
        );
        let digits = parse_rfc3339("2026-11-25T10:00:00.1234Z").unwrap_err();
        assert!(digits.contains("1 to 3 fractional digits"), "{digits}");
        let leap = parse_rfc3339("2016-12-31T23:59:60Z").unwrap_err();
        assert!(leap.contains("leap"), "{leap}");
        let day = parse_rfc3339("2026-02-30T00:00:00Z").unwrap_err();
        assert!(day.contains("day"), "{day}");
    }

    #[test]
    fn formats_what_is_not_an_offset_in_utc() {
        assert_eq!(
            format_rfc3339(1_795_600_800_000, ""),
            "2026-11-25T10:00:00.000Z"
        );
        assert_eq!(format_rfc3339(-1, ""), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_rfc3339(1_795_600_800_000, "-00:00"),
            "2026-11-25T10:00:00.000-00:00"
        );
        for junk in [
            "garbage",
            "+8:00",
            "+0800",
            "+08:00x",
            "+24:00",
            "+\u{e9}:00",
        ] {
            assert_eq!(
                format_rfc3339(1_795_600_800_000, junk),
                "2026-11-25T10:00:00.000Z",
                "{junk}"
            );
        }
        assert_eq!(
            format_rfc3339(i64::MAX, "+08:00"),
            format!("{} ms since 1970-01-01T00:00:00Z", i64::MAX)
        );
        assert_eq!(
            format_rfc3339(i64::MIN, ""),
            format!("{} ms since 1970-01-01T00:00:00Z", i64::MIN)
        );
    }

    /// Every day from 1900 to 2200 at a different millisecond of the day, in offsets
    /// from -23:59 to +23:59, and the first and last instants RFC 3339 can write.
    #[test]
    fn every_day_round_trips() {
        const DAY: i64 = 86_400_000;
        let offsets: Vec<String> = (-(23 * 60 + 59)..=23 * 60 + 59)
            .step_by(17)
            .map(|m: i64| {
                format!(
                    "{}{:02}:{:02}",
                    if m < 0 { '-' } else { '+' },
                    m.abs() / 60,
                    m.abs() % 60
                )
            })
            .collect();
        let (first, last) = (
            parse_rfc3339("1900-01-01T00:00:00Z").unwrap(),
            parse_rfc3339("2200-01-01T00:00:00Z").unwrap(),
        );
        for (i, day) in (first / DAY..last / DAY).enumerate() {
            let ms = day * DAY + (i as i64 * 7_919_993) % DAY;
            let off = &offsets[i % offsets.len()];
            let s = format_rfc3339(ms, off);
            assert_eq!(parse_rfc3339(&s), Ok(ms), "{s}");
            assert!(s.ends_with(off.as_str()) && s.len() == 29, "{s}");
        }
        for (ms, off) in [
            (-62_167_219_200_000, "+00:00"),
            (-62_167_219_200_000, ""),
            (253_402_300_799_999, "-00:00"),
        ] {
            let s = format_rfc3339(ms, off);
            assert_eq!(parse_rfc3339(&s), Ok(ms), "{s}");
        }
    }
}
