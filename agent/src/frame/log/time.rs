//! The times logs write, to microseconds since the Unix epoch, without a date library: a
//! civil date and time (candump `-tA`, ASC's `date` line, Saleae's ISO-8601), and decimal
//! seconds read exactly (no float rounding of `1635188455.020850`).

/// Microseconds since the Unix epoch of a UTC date and time; `None` out of range.
pub(crate) fn unix_micros(y: i64, m: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..=60).contains(&s)
        || !(0..=9999).contains(&y)
    {
        return None;
    }
    let days = crate::calendar::days_from_civil(y, m, d);
    Some(((days * 24 + h) * 60 + mi) * 60_000_000 + s * 1_000_000)
}

/// Decimal seconds (`0.004000`, `12`, `1.2e-05`) to microseconds, truncated; exact for plain
/// decimals, whatever their length.
pub(crate) fn seconds_to_micros(text: &str) -> Option<i64> {
    if text.contains(['e', 'E']) {
        let secs: f64 = text.parse().ok()?;
        return (secs.is_finite() && secs.abs() < 1e12).then_some((secs * 1e6) as i64);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 12
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut micros = 0i64;
    for (i, b) in fraction.bytes().take(6).enumerate() {
        micros += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
    }
    let total = whole * 1_000_000 + micros;
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_times_and_decimal_seconds() {
        assert_eq!(unix_micros(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(
            unix_micros(2021, 10, 25, 19, 0, 55),
            Some(1_635_188_455_000_000)
        );
        assert_eq!(
            unix_micros(2024, 2, 29, 0, 0, 0),
            Some(1_709_164_800_000_000)
        );
        assert_eq!(unix_micros(2021, 13, 1, 0, 0, 0), None);
        assert_eq!(
            seconds_to_micros("1635188455.020850"),
            Some(1_635_188_455_020_850)
        );
        assert_eq!(seconds_to_micros("0.0015981259"), Some(1_598));
        assert_eq!(seconds_to_micros("12"), Some(12_000_000));
        assert_eq!(seconds_to_micros("-0.5"), Some(-500_000));
        assert_eq!(seconds_to_micros("4e-06"), Some(4));
        for bad in ["", ".", "1.2.3", "x", "1e400", "9999999999999"] {
            assert_eq!(seconds_to_micros(bad), None, "{bad}");
        }
    }
}
