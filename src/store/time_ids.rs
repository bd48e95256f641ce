//! Time ranges as primary-key ranges. The outbox's, the received messages' and the licence
//! applications' ids are UUIDv7 (`Uuid::now_v7()` at insert), whose first 48 bits are the
//! Unix millisecond they were made, so the rows stamped within a period lie within an id range
//! that the primary key finds without reading the rest of the history.
//!
//! The id comes from the clock of the process that made it and the row's time from the
//! database's (`now()`), so the range is widened by [`CLOCK_MARGIN`] on each side; the time
//! condition itself still decides which rows count.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// How far an id's clock may be from the database's (and a transaction's start from its
/// insert) without a row falling outside its period's id range.
pub const CLOCK_MARGIN: Duration = Duration::hours(1);

/// The smallest UUIDv7 of the millisecond `t` falls in. Times before 1970 give the first
/// UUIDv7 there is, times past its 48-bit milliseconds (the year 10889) the first of its last
/// millisecond.
pub fn uuid7_floor(t: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(t.timestamp_millis())
        .unwrap_or(0)
        .min((1 << 48) - 1);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70;
    b[8] = 0x80;
    Uuid::from_bytes(b)
}

/// The least id of a row stamped at `start` or later.
pub fn low_bound(start: DateTime<Utc>) -> Uuid {
    uuid7_floor(
        start
            .checked_sub_signed(CLOCK_MARGIN)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// An id above every row stamped before `end`. Past the ids' last millisecond there is none,
/// so none is given: the caller leaves the range open.
pub fn high_bound(end: DateTime<Utc>) -> Option<Uuid> {
    let t = end.checked_add_signed(CLOCK_MARGIN)?;
    (t.timestamp_millis() < 1 << 48).then(|| uuid7_floor(t))
}

/// Bounds `[low, high)` on ids that hold every row stamped within `[start, end)`; `high` is
/// `None` when no id is above them all.
pub fn id_range(start: DateTime<Utc>, end: DateTime<Utc>) -> (Uuid, Option<Uuid>) {
    (low_bound(start), high_bound(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_made_at_a_moment_lies_within_the_range_of_that_moment() {
        let t: DateTime<Utc> = "2026-11-30T23:59:59.999Z".parse().unwrap();
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            t.timestamp() as u64,
            t.timestamp_subsec_nanos(),
        );
        let id = Uuid::new_v7(ts);
        assert!(uuid7_floor(t) <= id);
        assert!(id < uuid7_floor(t + Duration::milliseconds(1)));
        let (low, high) = id_range(t, t + Duration::milliseconds(1));
        assert!(low <= id && id < high.unwrap());
        assert_eq!(uuid7_floor(t).get_version_num(), 7);
        let before_1970: DateTime<Utc> = "1960-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(uuid7_floor(before_1970), uuid7_floor(DateTime::UNIX_EPOCH));
        // The ends of time give bounds, not a wrapped id or a panic.
        assert_eq!(high_bound(DateTime::<Utc>::MAX_UTC), None);
        let far: DateTime<Utc> = "+12000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(high_bound(far), None);
        assert!(uuid7_floor(far) > uuid7_floor(t));
        assert_eq!(
            low_bound(DateTime::<Utc>::MIN_UTC),
            uuid7_floor(DateTime::UNIX_EPOCH)
        );
    }
}
