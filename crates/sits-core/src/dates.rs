//! Dates and acquisition timestamps, for every crate: day of year and day offsets,
//! validated timestamp sequences ([`Timestamps`]) and their parsing.
//!
//! Models disagree on how they encode time: U-TAE feeds integer days since a
//! reference date (2018-09-01 for PASTIS), TSViT and SITS-BERT feed the day of year.
//! These helpers give both from a [`chrono::NaiveDate`].

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};

/// Acquisition dates that cannot be used: unsorted, duplicated, unparsable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dates of {what}: {reason}")]
pub struct DatesError {
    /// The cube, sample or file the dates belong to.
    pub what: String,
    /// What is wrong.
    pub reason: String,
}

type Result<T> = std::result::Result<T, DatesError>;

/// Day of year, 1 for January 1st up to 366 on the last day of a leap year.
pub fn day_of_year(date: NaiveDate) -> u32 {
    date.ordinal()
}

/// Whole days from `reference` to `date` (negative when `date` is earlier).
pub fn days_since(date: NaiveDate, reference: NaiveDate) -> i64 {
    (date - reference).num_days()
}

/// The reference date of the PASTIS benchmark and of the official U-TAE code
/// (`reference_date="2018-09-01"` in `utae-paps` `dataset.py`).
pub fn pastis_reference() -> NaiveDate {
    // A constant date that always exists.
    NaiveDate::from_ymd_opt(2018, 9, 1).unwrap_or(NaiveDate::MIN)
}

/// Strictly increasing acquisition timestamps (UTC, no time zone attached).
///
/// Timestamps rather than dates: two acquisitions on the same day (the Slovenia cube
/// has two on 2015-12-08, 7 minutes apart) are distinct. Models that only see whole
/// days get [`Timestamps::days_since`] or [`Timestamps::day_of_year`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamps(Vec<NaiveDateTime>);

impl Timestamps {
    /// Checks that `times` is strictly increasing; `what` names the data in errors.
    pub fn new(times: Vec<NaiveDateTime>, what: &str) -> Result<Self> {
        for (i, w) in times.windows(2).enumerate() {
            if w[1] == w[0] {
                return Err(DatesError {
                    what: what.to_string(),
                    reason: format!(
                        "duplicate timestamp {} at positions {i} and {}",
                        w[0],
                        i + 1
                    ),
                });
            }
            if w[1] < w[0] {
                return Err(DatesError {
                    what: what.to_string(),
                    reason: format!(
                        "not sorted: {} at position {} comes after {}",
                        w[1],
                        i + 1,
                        w[0]
                    ),
                });
            }
        }
        Ok(Self(times))
    }

    /// Dates at midnight.
    pub fn from_dates(dates: &[NaiveDate], what: &str) -> Result<Self> {
        Self::new(
            dates.iter().map(|d| d.and_time(NaiveTime::MIN)).collect(),
            what,
        )
    }

    /// Parses ISO strings (`2018-09-24`, `2015-07-11T10:00:08`, `2015-07-11 10:00:08`,
    /// an optional trailing `Z`) or PASTIS-style `20180924`.
    pub fn parse<S: AsRef<str>>(texts: &[S], what: &str) -> Result<Self> {
        let times = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                parse_timestamp(t.as_ref()).ok_or_else(|| DatesError {
                    what: what.to_string(),
                    reason: format!(
                        "entry {i}: cannot parse {:?} as a date or timestamp",
                        t.as_ref()
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(times, what)
    }

    /// The timestamps.
    pub fn as_slice(&self) -> &[NaiveDateTime] {
        &self.0
    }

    /// Number of acquisitions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no acquisition.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// First acquisition.
    pub fn first(&self) -> Option<NaiveDateTime> {
        self.0.first().copied()
    }

    /// Last acquisition.
    pub fn last(&self) -> Option<NaiveDateTime> {
        self.0.last().copied()
    }

    /// Whole days from `reference` to the calendar date of each acquisition.
    pub fn days_since(&self, reference: NaiveDate) -> Vec<i64> {
        self.0
            .iter()
            .map(|t| days_since(t.date(), reference))
            .collect()
    }

    /// Day of year (1..=366) of each acquisition.
    pub fn day_of_year(&self) -> Vec<u32> {
        self.0.iter().map(|t| day_of_year(t.date())).collect()
    }

    /// The sub-sequence at `indices` (must be increasing).
    pub fn select(&self, indices: &[usize]) -> Self {
        Self(indices.iter().map(|&i| self.0[i]).collect())
    }

    /// Index range `[a, b)` of the acquisitions with `start <= t < end`.
    pub fn range_indices(
        &self,
        start: NaiveDateTime,
        end: NaiveDateTime,
    ) -> std::ops::Range<usize> {
        let a = self.0.partition_point(|t| *t < start);
        let b = self.0.partition_point(|t| *t < end);
        a..b.max(a)
    }

    /// ISO strings, dates only when every time is midnight.
    pub fn to_iso(&self) -> Vec<String> {
        let dates_only = self.0.iter().all(|t| t.time() == NaiveTime::MIN);
        self.0
            .iter()
            .map(|t| {
                if dates_only {
                    t.date().to_string()
                } else {
                    t.format("%Y-%m-%dT%H:%M:%S").to_string()
                }
            })
            .collect()
    }
}

/// Parses one date or timestamp (see [`Timestamps::parse`]).
pub fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim().trim_end_matches('Z');
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_time(NaiveTime::MIN));
    }
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::parse_from_str(s, "%Y%m%d")
            .ok()
            .map(|d| d.and_time(NaiveTime::MIN));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doy_and_offsets() {
        let d = NaiveDate::from_ymd_opt(2016, 12, 31).unwrap();
        assert_eq!(day_of_year(d), 366);
        let r = NaiveDate::from_ymd_opt(2016, 12, 1).unwrap();
        assert_eq!(days_since(d, r), 30);
        assert_eq!(days_since(r, d), -30);
        assert_eq!(pastis_reference().to_string(), "2018-09-01");
    }

    #[test]
    fn parses_and_validates() {
        let t = Timestamps::parse(
            &["2015-12-08T10:04:09", "2015-12-08T10:11:25", "20151218"],
            "x",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.day_of_year(), vec![342, 342, 352]);
        assert_eq!(
            t.days_since(NaiveDate::from_ymd_opt(2015, 12, 1).unwrap()),
            vec![7, 7, 17]
        );
        let e = Timestamps::parse(&["2015-12-08", "2015-12-08"], "cube.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cube.json") && e.contains("duplicate"), "{e}");
        let e = Timestamps::parse(&["2016-01-01", "2015-12-08"], "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not sorted"), "{e}");
        let e = Timestamps::parse(&["2016-13-01"], "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot parse"), "{e}");
    }

    #[test]
    fn range() {
        let t = Timestamps::parse(&["2020-01-01", "2020-02-01", "2020-03-01"], "x").unwrap();
        let s = parse_timestamp("2020-01-15").unwrap();
        let e = parse_timestamp("2020-03-01").unwrap();
        assert_eq!(t.range_indices(s, e), 1..2);
        assert_eq!(t.range_indices(e, s), 2..2);
    }
}
