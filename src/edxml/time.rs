//! edXML dates and timestamps.
//!
//! QCVN 102 writes dates `YYYY/MM/DD` and timestamps `YYYY/MM/DD HH:mm:ss`, in local time
//! without a zone; local time is Vietnam's, UTC+7 ([`VIETNAM`]). Strict mode accepts only those
//! forms and is what truc writes. Lenient mode also reads the forms seen in field traffic:
//! `dd/MM/yyyy` (with one- or two-digit day and month), ISO `YYYY-MM-DD`, and for timestamps
//! the same date forms followed by `HH:mm:ss`, `HH:mm` or, for ISO, `THH:mm:ss`.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};

/// Vietnam's fixed UTC offset, in which edXML dates and timestamps are written.
pub const VIETNAM: Offset = Offset::constant(7);

/// Which spelling a parsed value used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    /// The QCVN 102 form.
    Standard,
    /// A form only lenient mode accepts.
    Legacy,
}

/// Parses a date, reporting which spelling it used; `None` if it is no date at all.
pub fn parse_date(s: &str) -> Option<(Date, Spelling)> {
    if let Some(d) = ymd(s, '/') {
        return Some((d, Spelling::Standard));
    }
    ymd(s, '-')
        .or_else(|| dmy(s))
        .map(|d| (d, Spelling::Legacy))
}

/// Parses a timestamp, reporting which spelling it used; `None` if it is no timestamp.
pub fn parse_timestamp(s: &str) -> Option<(DateTime, Spelling)> {
    let (date, time, standard) = if let Some((d, t)) = s.split_once(' ') {
        let (date, spelling) = parse_date(d)?;
        (date, t, spelling == Spelling::Standard)
    } else {
        let (d, t) = s.split_once('T')?;
        (ymd(d, '-')?, t, false)
    };
    let parts: Vec<&str> = time.split(':').collect();
    let (h, m, sec, full) = match parts.as_slice() {
        [h, m, s] => (*h, *m, *s, true),
        [h, m] => (*h, *m, "00", false),
        _ => return None,
    };
    let num = |x: &str| -> Option<i8> {
        (x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    let time = Time::new(num(h)?, num(m)?, num(sec)?, 0).ok()?;
    let spelling = if standard && full {
        Spelling::Standard
    } else {
        Spelling::Legacy
    };
    Some((date.to_datetime(time), spelling))
}

fn ymd(s: &str, sep: char) -> Option<Date> {
    let mut it = s.split(sep);
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    civil(y, m, d)
}

fn dmy(s: &str) -> Option<Date> {
    let mut it = s.split('/');
    let (d, m, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some()
        || y.len() != 4
        || !(1..=2).contains(&m.len())
        || !(1..=2).contains(&d.len())
    {
        return None;
    }
    civil(y, m, d)
}

fn civil(y: &str, m: &str, d: &str) -> Option<Date> {
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !digits(y) || !digits(m) || !digits(d) {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

/// Writes a date in the QCVN 102 form `YYYY/MM/DD`.
pub fn format_date(d: Date) -> String {
    format!("{:04}/{:02}/{:02}", d.year(), d.month(), d.day())
}

/// Writes a timestamp in the QCVN 102 form `YYYY/MM/DD HH:mm:ss`.
pub fn format_timestamp(t: DateTime) -> String {
    format!(
        "{} {:02}:{:02}:{:02}",
        format_date(t.date()),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Vietnam's local date and time at instant `now`.
pub fn vietnam_time(now: jiff::Timestamp) -> DateTime {
    TimeZone::fixed(VIETNAM).to_datetime(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn standard_and_legacy_dates() {
        assert_eq!(
            parse_date("2025/03/14"),
            Some((date(2025, 3, 14), Spelling::Standard))
        );
        for legacy in ["14/03/2025", "14/3/2025", "2025-03-14"] {
            assert_eq!(
                parse_date(legacy),
                Some((date(2025, 3, 14), Spelling::Legacy)),
                "{legacy}"
            );
        }
        for bad in [
            "2025/13/45",
            "2025/02/30",
            "25/03/14",
            "2025/3/14",
            "ngày mai",
            "",
            "2025/03/14/1",
            "+025/03/14",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn standard_and_legacy_timestamps() {
        let t = date(2025, 3, 14).at(9, 15, 0, 0);
        assert_eq!(
            parse_timestamp("2025/03/14 09:15:00"),
            Some((t, Spelling::Standard))
        );
        for legacy in [
            "14/03/2025 09:15:00",
            "2025-03-14T09:15:00",
            "2025/03/14 09:15",
        ] {
            assert_eq!(
                parse_timestamp(legacy),
                Some((t, Spelling::Legacy)),
                "{legacy}"
            );
        }
        for bad in [
            "2025/03/14 25:61:00",
            "2025/03/14",
            "2025/03/14 9:15:00",
            "x y",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        let t = date(2026, 1, 2).at(3, 4, 5, 0);
        assert_eq!(format_timestamp(t), "2026/01/02 03:04:05");
        assert_eq!(
            parse_timestamp(&format_timestamp(t)),
            Some((t, Spelling::Standard))
        );
    }

    #[test]
    fn vietnam_is_utc_plus_seven() {
        let now: jiff::Timestamp = "2025-03-14T20:00:00Z".parse().unwrap();
        assert_eq!(vietnam_time(now), date(2025, 3, 15).at(3, 0, 0, 0));
    }
}
