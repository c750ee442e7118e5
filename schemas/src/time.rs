//! RFC 3339 timestamps for the JSON form of events, to and from Unix milliseconds.
//! Millisecond precision is exact both ways, which signing needs: the device signs
//! the milliseconds, the JSON carries the text.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]` followed by `Z` or `±HH:MM` into Unix ms.
/// More than three fractional digits are refused rather than rounded.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = || format!("'{s}' is not an RFC 3339 time like 2026-11-25T08:30:00.123+08:00");
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &b[r];
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0, |a, d| a * 10 + i64::from(d - b'0')))
        } else {
            Err(bad())
        }
    };
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 3 {
            return Err(format!(
                "'{s}': give 1 to 3 fractional digits (millisecond precision)"
            ));
        }
        ms = frac[..digits]
            .bytes()
            .fold(0, |a, d| a * 10 + i64::from(d - b'0'))
            * 10i64.pow(3 - digits as u32);
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        // Bytes, not str slices: a multi-byte character here must be an error, not a panic.
        o if o.len() == 6
            && (o.starts_with('+') || o.starts_with('-'))
            && o.as_bytes()[3] == b':' =>
        {
            let ob = o.as_bytes();
            let two = |x: &[u8]| -> Result<i64, String> {
                if x.iter().all(u8::is_ascii_digit) {
                    Ok(i64::from(x[0] - b'0') * 10 + i64::from(x[1] - b'0'))
                } else {
                    Err(bad())
                }
            };
            let m = two(&ob[1..3])? * 60 + two(&ob[4..6])?;
            if o.starts_with('-') {
                -m
            } else {
                m
            }
        }
        _ => return Err(bad()),
    };
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if d < 1 || d > days_in_month || h > 23 || mi > 59 || sec > 59 {
        return Err(bad());
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Ok(secs * 1000 + ms)
}

/// Formats Unix ms as RFC 3339 in the given `±HH:MM` offset, with milliseconds.
pub fn format_rfc3339(ms: i64, offset: &str) -> String {
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let offset_min = offset
        .get(1..3)
        .and_then(|h| h.parse::<i64>().ok())
        .zip(offset.get(4..6).and_then(|m| m.parse::<i64>().ok()))
        .map_or(0, |(h, m)| sign * (h * 60 + m));
    let local = ms + offset_min * 60_000;
    let (days, rem) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000));
    let (y, mo, d) = civil_from_days(days);
    let suffix = if offset_min == 0 && offset.is_empty() {
        "Z".to_string()
    } else {
        offset.to_string()
    };
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}{suffix}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
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
}
