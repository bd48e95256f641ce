//! Working time: the clock agency time limits run on. Only the working hours of working days
//! count (Monday to Friday, not a public holiday, in the window's local time).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, Utc, Weekday};

/// The window's date: what "today" means for the rules that compare a document's dates with
/// the window's (a declaration's issue date, a licence's validity). The local date in the
/// window's time zone, or a fixed date set by configuration (`calendar.today`,
/// `NSW_CLOCK_TODAY`), so tests and demonstrations run the same on any day.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: FixedOffset,
    fixed: Option<NaiveDate>,
}

impl Clock {
    /// The system clock read in the time zone at `offset`.
    pub fn system(offset: FixedOffset) -> Self {
        Clock {
            offset,
            fixed: None,
        }
    }

    /// A clock whose date is always `today`.
    pub fn fixed(offset: FixedOffset, today: NaiveDate) -> Self {
        Clock {
            offset,
            fixed: Some(today),
        }
    }

    pub fn offset(&self) -> FixedOffset {
        self.offset
    }

    /// The window's local date.
    pub fn today(&self) -> NaiveDate {
        self.fixed
            .unwrap_or_else(|| Utc::now().with_timezone(&self.offset).date_naive())
    }
}

impl Default for Clock {
    /// The system clock in the default calendar's time zone (Viet Nam, UTC+07:00).
    fn default() -> Self {
        Clock::system(FixedOffset::east_opt(7 * 3600).expect("UTC+07:00"))
    }
}

#[derive(Debug, Clone)]
pub struct Calendar {
    offset: FixedOffset,
    day_start: NaiveTime,
    day_end: NaiveTime,
    holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// `day_start < day_end` is checked by the settings; an inverted window counts nothing.
    pub fn new(
        offset: FixedOffset,
        day_start: NaiveTime,
        day_end: NaiveTime,
        holidays: impl IntoIterator<Item = NaiveDate>,
    ) -> Self {
        Calendar {
            offset,
            day_start,
            day_end,
            holidays: holidays.into_iter().collect(),
        }
    }

    /// Length of one working day in minutes: what a time limit given in days counts per day.
    pub fn working_day_minutes(&self) -> u32 {
        u32::try_from((self.day_end - self.day_start).num_minutes()).unwrap_or(0)
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&d)
    }

    /// Working seconds in `[from, to)`; zero when `to <= from`.
    pub fn working_seconds(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        if to <= from {
            return 0;
        }
        let a = from.with_timezone(&self.offset).naive_local();
        let b = to.with_timezone(&self.offset).naive_local();
        let mut total = 0;
        let mut day = a.date();
        while day <= b.date() {
            if self.is_working_day(day) {
                let open = day.and_time(self.day_start);
                let close = day.and_time(self.day_end);
                let start = open.max(a);
                let end = close.min(b);
                if end > start {
                    total += (end - start).num_seconds();
                }
            }
            day += Duration::days(1);
        }
        total
    }

    /// Working seconds of `[from, to)` minus those of the `pauses` (which may overlap it or each
    /// other only as far as the caller lets them; each is clipped to the interval).
    pub fn working_seconds_excluding(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        pauses: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> i64 {
        let paused: i64 = pauses
            .iter()
            .map(|&(p, q)| self.working_seconds(p.max(from), q.min(to)))
            .sum();
        (self.working_seconds(from, to) - paused).max(0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::{Rng, SeedableRng};

    /// Viet Nam's window: 08:00-16:00 at UTC+7, Wednesday 2026-09-02 (National Day) a holiday.
    pub(crate) fn cal() -> Calendar {
        Calendar::new(
            FixedOffset::east_opt(7 * 3600).unwrap(),
            NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(16, 0, 0).unwrap(),
            [NaiveDate::from_ymd_opt(2026, 9, 2).unwrap()],
        )
    }

    /// Local (UTC+7) wall-clock time.
    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_working_day_has_eight_hours_and_a_weekend_none() {
        let c = cal();
        // Monday 2026-09-07
        assert_eq!(
            c.working_seconds(at(2026, 9, 7, 0, 0), at(2026, 9, 8, 0, 0)),
            8 * 3600
        );
        // Saturday to Monday morning
        assert_eq!(
            c.working_seconds(at(2026, 9, 5, 0, 0), at(2026, 9, 7, 8, 0)),
            0
        );
        // a holiday (Wednesday 2026-09-02) counts nothing
        assert_eq!(
            c.working_seconds(at(2026, 9, 2, 0, 0), at(2026, 9, 3, 0, 0)),
            0
        );
        // Friday 15:00 to Monday 09:00: one hour each side
        assert_eq!(
            c.working_seconds(at(2026, 9, 4, 15, 0), at(2026, 9, 7, 9, 0)),
            2 * 3600
        );
    }

    #[test]
    fn the_working_day_length_follows_the_configured_hours() {
        assert_eq!(cal().working_day_minutes(), 8 * 60);
        let long = Calendar::new(
            FixedOffset::east_opt(7 * 3600).unwrap(),
            NaiveTime::from_hms_opt(7, 30, 0).unwrap(),
            NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            [],
        );
        assert_eq!(long.working_day_minutes(), 9 * 60 + 30);
        // a full working day counts exactly that long
        assert_eq!(
            i64::from(long.working_day_minutes()) * 60,
            long.working_seconds(at(2026, 9, 7, 0, 0), at(2026, 9, 8, 0, 0))
        );
    }

    #[test]
    fn pauses_are_excluded() {
        let c = cal();
        let from = at(2026, 9, 7, 8, 0);
        let to = at(2026, 9, 9, 16, 0);
        let pause = (at(2026, 9, 8, 8, 0), at(2026, 9, 9, 8, 0));
        assert_eq!(c.working_seconds(from, to), 24 * 3600);
        assert_eq!(c.working_seconds_excluding(from, to, &[pause]), 16 * 3600);
    }

    /// Properties over random intervals: additive, bounded by wall-clock time, zero when empty.
    #[test]
    fn working_time_is_additive_and_bounded() {
        let c = cal();
        let mut rng = rand::rngs::StdRng::seed_from_u64(20260907);
        let base = at(2026, 1, 1, 0, 0);
        for _ in 0..2_000 {
            let mut t: Vec<DateTime<Utc>> = (0..3)
                .map(|_| base + Duration::seconds(rng.gen_range(0..(400 * 86_400))))
                .collect();
            t.sort();
            let (a, b, d) = (t[0], t[1], t[2]);
            let ab = c.working_seconds(a, b);
            let bd = c.working_seconds(b, d);
            assert_eq!(c.working_seconds(a, d), ab + bd, "{a} {b} {d}");
            assert!(ab <= (b - a).num_seconds());
            assert!(ab >= 0);
            assert_eq!(c.working_seconds(b, a), 0);
            assert!(c.working_seconds_excluding(a, d, &[(a, b)]) == bd);
        }
    }
}
