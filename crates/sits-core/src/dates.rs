//! Calendar helpers shared by every crate: day of year and day offsets.
//!
//! Models disagree on how they encode time: U-TAE feeds integer days since a
//! reference date (2018-09-01 for PASTIS), TSViT and SITS-BERT feed the day of year.
//! These helpers give both from a [`chrono::NaiveDate`].

use chrono::{Datelike, NaiveDate};

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
}
