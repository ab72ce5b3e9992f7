//! When a certificate expires: its `notAfter`, read from the DER. Pure.
//!
//! rustls checks validity during the handshake but does not hand the date out, and an
//! X.509 parser crate for one field of one certificate would add more code to the truck's
//! binary than this walk: the five fields before `validity` are skipped by their lengths
//! (RFC 5280, section 4.1), and the time is UTCTime or GeneralizedTime in UTC.

use std::time::{Duration, SystemTime};

use crate::calendar::{civil_from_days, days_from_civil};

/// The certificate's `notAfter`, or `None` when the DER is not a certificate this walk can
/// read (the TLS handshake then says what is wrong with it).
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (certificate, _) = element(der, SEQUENCE)?;
    let (mut tbs, _) = element(certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs, VERSION)?.1;
    }
    for tag in [INTEGER, SEQUENCE, SEQUENCE] {
        tbs = element(tbs, tag)?.1; // serial number, signature algorithm, issuer
    }
    let (validity, _) = element(tbs, SEQUENCE)?;
    let (_, rest) = any(validity)?; // notBefore
    let (tag, time, _) = tlv(rest)?;
    match tag {
        UTC_TIME => time_of(time, false),
        GENERALIZED_TIME => time_of(time, true),
        _ => None,
    }
}

/// How long before its expiry a device certificate is warned about: time enough to issue
/// a new one and reach a truck that is often out of coverage.
pub const WARN_AHEAD: Duration = Duration::from_secs(30 * 86_400);

/// What to tell an operator about a device certificate expiring at `expires`, seen at
/// `now`: `None` while it has more than [`WARN_AHEAD`] to run.
pub fn warning(expires: SystemTime, now: SystemTime) -> Option<String> {
    let date = date_of(expires);
    match expires.duration_since(now) {
        Err(past) => Some(format!(
            "the device certificate expired on {date} ({} days ago): the broker refuses it; \
             issue a new one (deploy/aws/provision-truck.sh) and install it",
            past.duration().as_secs() / 86_400
        )),
        Ok(left) if left < WARN_AHEAD => Some(format!(
            "the device certificate expires on {date} (in {} days): issue a new one and \
             install it before then",
            left.as_secs() / 86_400
        )),
        Ok(_) => None,
    }
}

/// `YYYY-MM-DD` (UTC) of a time.
pub fn date_of(time: SystemTime) -> String {
    let seconds = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: its tag, its contents and what follows it.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |l, &b| (l << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = tlv(der)?;
    (found == tag).then_some((contents, rest))
}

fn any(der: &[u8]) -> Option<(&[u8], &[u8])> {
    tlv(der).map(|(_, contents, rest)| (contents, rest))
}

/// `YYMMDDHHMMSSZ` (UTCTime: 50-99 are 1950-1999) or `YYYYMMDDHHMMSSZ`.
fn time_of(text: &[u8], four_digit_year: bool) -> Option<SystemTime> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, at) = if four_digit_year {
        (digits(0..4)?, 4)
    } else {
        let yy = digits(0..2)?;
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
    };
    if text.len() != at + 10 {
        return None;
    }
    let field = |i: usize| digits(at + 2 * i..at + 2 * i + 2);
    let (month, day) = (field(0)?, field(1)?);
    let (hour, minute, second) = (field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    let since_epoch = Duration::from_secs(u64::try_from(seconds).ok()?);
    Some(SystemTime::UNIX_EPOCH + since_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_after: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["truck-7".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn unix(time: SystemTime) -> u64 {
        time.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn reads_not_after_in_either_time_form() {
        // rcgen writes UTCTime up to 2049 and GeneralizedTime from 2050 (RFC 5280).
        assert_eq!(
            unix(not_after(&certificate((2027, 3, 1))).unwrap()),
            1_803_859_200
        );
        assert_eq!(
            unix(not_after(&certificate((2020, 12, 31))).unwrap()),
            1_609_372_800
        );
        assert_eq!(
            unix(not_after(&certificate((2051, 1, 1))).unwrap()),
            2_556_144_000
        );
    }

    #[test]
    fn what_is_not_a_certificate_gives_none() {
        let good = certificate((2027, 3, 1));
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(b"-----BEGIN CERTIFICATE-----"), None);
        assert_eq!(not_after(&good[..good.len() / 2]), None);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xFF;
            let _ = not_after(&bad); // never panics
        }
    }

    #[test]
    fn warns_within_30_days_and_after_expiry_only() {
        let day = Duration::from_secs(86_400);
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(1_803_859_200);
        assert_eq!(warning(expires, expires - 31 * day), None);
        let soon = warning(expires, expires - 12 * day).unwrap();
        assert!(
            soon.contains("expires on 2027-03-01 (in 12 days)"),
            "{soon}"
        );
        let past = warning(expires, expires + 3 * day).unwrap();
        assert!(
            past.contains("expired on 2027-03-01 (3 days ago)"),
            "{past}"
        );
    }
}
