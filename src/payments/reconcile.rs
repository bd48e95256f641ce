//! Reconciliation: the platform's settlement file for one local day against what the window
//! recorded, every difference reported.
//!
//! [`compare`] is the comparison itself, a pure function of the two lists; the run around it
//! (fetching and verifying the file, reading the window's records, storing the result) is in
//! [`super::reconciliation`]. Rows are matched on the platform's transaction id:
//!
//! | settlement file | window | mismatch |
//! |---|---|---|
//! | a payment | nothing | `paid_not_recorded` |
//! | nothing | a payment | `recorded_not_settled` |
//! | a payment | a payment, another amount | `amount_differs` |
//! | a refund | nothing | `refund_not_recorded` |
//! | nothing | a refund | `refund_not_settled` |
//! | a refund | a refund, another amount | `refund_amount_differs` |
//! | a row | the same transaction under another reference | `reference_differs` |
//! | a payment | the same transaction recorded as a refund (or the other way) | `status_differs` |
//! | the same transaction twice | | `duplicate_in_file` |
//!
//! Amounts are whole đồng.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::protocol::{SettlementRow, SettlementStatus};

/// What a recorded transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// Money the platform took for a fee (a settlement row `paid`).
    Payment,
    /// Money the platform paid back (a settlement row `refunded`).
    Refund,
}

impl Entry {
    pub fn as_str(self) -> &'static str {
        match self {
            Entry::Payment => "payment",
            Entry::Refund => "refund",
        }
    }

    fn of(status: SettlementStatus) -> Entry {
        match status {
            SettlementStatus::Paid => Entry::Payment,
            SettlementStatus::Refunded => Entry::Refund,
        }
    }
}

/// A transaction as the window recorded it: a payment applied (or kept to be refunded), or a
/// refund the platform reported paid back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub entry: Entry,
    /// The platform's transaction id (a refund's own transaction for a refund). `None` for a
    /// refund the window knows paid back only from the platform's notification, which names
    /// the refunded payment instead: it is matched on its reference until the window learns
    /// its transaction (the payments job asks).
    pub transaction_id: Option<String>,
    /// The reference the platform knows the order by (what its file names).
    pub reference: String,
    /// Đồng.
    pub amount: i64,
    /// When the platform took (or paid back) the money, as far as the window knows.
    pub time: DateTime<Utc>,
}

/// The kind of a difference (see the module's table). Its `as_str` is stable: it is stored,
/// answered by the API and printed by the command line.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    PaidNotRecorded,
    RecordedNotSettled,
    AmountDiffers,
    RefundNotRecorded,
    RefundNotSettled,
    RefundAmountDiffers,
    ReferenceDiffers,
    StatusDiffers,
    DuplicateInFile,
}

impl MismatchKind {
    pub const ALL: [MismatchKind; 9] = [
        MismatchKind::PaidNotRecorded,
        MismatchKind::RecordedNotSettled,
        MismatchKind::AmountDiffers,
        MismatchKind::RefundNotRecorded,
        MismatchKind::RefundNotSettled,
        MismatchKind::RefundAmountDiffers,
        MismatchKind::ReferenceDiffers,
        MismatchKind::StatusDiffers,
        MismatchKind::DuplicateInFile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::PaidNotRecorded => "paid_not_recorded",
            MismatchKind::RecordedNotSettled => "recorded_not_settled",
            MismatchKind::AmountDiffers => "amount_differs",
            MismatchKind::RefundNotRecorded => "refund_not_recorded",
            MismatchKind::RefundNotSettled => "refund_not_settled",
            MismatchKind::RefundAmountDiffers => "refund_amount_differs",
            MismatchKind::ReferenceDiffers => "reference_differs",
            MismatchKind::StatusDiffers => "status_differs",
            MismatchKind::DuplicateInFile => "duplicate_in_file",
        }
    }
}

/// One difference between the file and the window's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub kind: MismatchKind,
    /// The platform's transaction; empty for a recorded refund whose transaction the window
    /// does not know yet.
    pub transaction_id: String,
    /// The reference in the settlement file (absent: not in the file).
    pub settled_reference: Option<String>,
    /// The reference the window recorded (absent: not recorded).
    pub recorded_reference: Option<String>,
    /// Đồng, as in the file (absent: not in the file).
    pub settled_amount: Option<i64>,
    /// Đồng, as the window recorded it (absent: not recorded).
    pub recorded_amount: Option<i64>,
    /// The time in the file, else the window's.
    pub time: DateTime<Utc>,
}

impl Mismatch {
    /// The reference to show: the file's, else the window's.
    pub fn reference(&self) -> &str {
        self.settled_reference
            .as_deref()
            .or(self.recorded_reference.as_deref())
            .unwrap_or("")
    }
}

/// The figures of a comparison. Amounts are đồng, summed over every row (matched or not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counts {
    /// Payment rows in the file.
    pub settled_payments: i64,
    /// Refund rows in the file.
    pub settled_refunds: i64,
    /// Payments the window recorded.
    pub recorded_payments: i64,
    /// Refunds the window recorded.
    pub recorded_refunds: i64,
    /// Transactions present on both sides with the same kind, amount and reference.
    pub matched: i64,
    pub settled_paid_amount: i64,
    pub settled_refunded_amount: i64,
    pub recorded_paid_amount: i64,
    pub recorded_refunded_amount: i64,
}

/// What [`compare`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub counts: Counts,
    /// By time, then transaction id, then kind.
    pub mismatches: Vec<Mismatch>,
}

/// Where a run's settlement file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Fetched from the platform, its signature verified against the pinned certificate.
    Platform,
    /// A file an operator gave (`nsw payments reconcile --file`): its signature could not be
    /// checked.
    File,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Platform => "platform",
            Source::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "platform" => Some(Source::Platform),
            "file" => Some(Source::File),
            _ => None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The file and the window agree on every transaction.
    Matched,
    /// Compared, with at least one mismatch.
    Mismatches,
    /// Not compared: the file could not be had, did not verify or did not parse.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Mismatches => "mismatches",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "matched" => Some(Outcome::Matched),
            "mismatches" => Some(Outcome::Mismatches),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }

    /// The outcome of a comparison.
    pub fn of(c: &Comparison) -> Outcome {
        if c.mismatches.is_empty() {
            Outcome::Matched
        } else {
            Outcome::Mismatches
        }
    }
}

/// A reconciliation run as stored (`reconciliations`): what the API answers and the console
/// shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub id: uuid::Uuid,
    /// The local day (the window's time zone) the settlement file covers.
    #[schema(value_type = String, format = Date, example = "2026-11-30")]
    pub settlement_date: chrono::NaiveDate,
    pub ran_at: DateTime<Utc>,
    /// `payments` (the daily job), `cli`, or the administrator's party id.
    pub actor: String,
    pub source: Source,
    pub outcome: Outcome,
    /// Why a failed run failed.
    pub failure: Option<String>,
    pub counts: Counts,
    /// Every mismatch, by time (empty for a failed run).
    pub mismatches: Vec<Mismatch>,
    /// SHA-256 (hex) of the file's exact bytes, when there was a file.
    pub file_sha256: Option<String>,
}

/// Compares the settlement file's rows with the window's records of the same day: every
/// transaction on either side is matched on its id, and each difference becomes a
/// [`Mismatch`]. Pure: the caller chooses both lists (see [`super::reconciliation`]).
pub fn compare(settled: &[SettlementRow], recorded: &[Recorded]) -> Comparison {
    let mut counts = Counts::default();
    let mut mismatches = Vec::new();

    for r in recorded {
        match r.entry {
            Entry::Payment => {
                counts.recorded_payments += 1;
                counts.recorded_paid_amount = counts.recorded_paid_amount.saturating_add(r.amount);
            }
            Entry::Refund => {
                counts.recorded_refunds += 1;
                counts.recorded_refunded_amount =
                    counts.recorded_refunded_amount.saturating_add(r.amount);
            }
        }
    }
    // The window records a transaction once (UNIQUE in its tables); should a list carry one
    // twice anyway, the first is compared.
    let mut by_id: HashMap<&str, &Recorded> = HashMap::new();
    // Refunds whose own transaction the window does not know yet, and whether a row took one.
    let mut unnamed: Vec<(&Recorded, bool)> = Vec::new();
    for r in recorded {
        match r.transaction_id.as_deref() {
            Some(id) => {
                by_id.entry(id).or_insert(r);
            }
            None => unnamed.push((r, false)),
        }
    }

    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for row in settled {
        let entry = Entry::of(row.status);
        match entry {
            Entry::Payment => {
                counts.settled_payments += 1;
                counts.settled_paid_amount = counts.settled_paid_amount.saturating_add(row.amount);
            }
            Entry::Refund => {
                counts.settled_refunds += 1;
                counts.settled_refunded_amount =
                    counts.settled_refunded_amount.saturating_add(row.amount);
            }
        }
        let times = seen.entry(row.transaction_id.as_str()).or_insert(0);
        *times += 1;
        if *times > 1 {
            mismatches.push(Mismatch {
                kind: MismatchKind::DuplicateInFile,
                transaction_id: row.transaction_id.clone(),
                settled_reference: Some(row.reference.clone()),
                recorded_reference: None,
                settled_amount: Some(row.amount),
                recorded_amount: None,
                time: row.time,
            });
            continue;
        }
        let rec = by_id.get(row.transaction_id.as_str()).copied().or_else(|| {
            // A refund row no recorded transaction names: a refund of the same order whose
            // transaction the window does not know yet is taken to be it.
            let slot = unnamed.iter_mut().find(|(r, used)| {
                !*used && entry == Entry::Refund && r.reference == row.reference
            })?;
            slot.1 = true;
            Some(slot.0)
        });
        let Some(rec) = rec else {
            mismatches.push(Mismatch {
                kind: match entry {
                    Entry::Payment => MismatchKind::PaidNotRecorded,
                    Entry::Refund => MismatchKind::RefundNotRecorded,
                },
                transaction_id: row.transaction_id.clone(),
                settled_reference: Some(row.reference.clone()),
                recorded_reference: None,
                settled_amount: Some(row.amount),
                recorded_amount: None,
                time: row.time,
            });
            continue;
        };
        let both = |kind| Mismatch {
            kind,
            transaction_id: row.transaction_id.clone(),
            settled_reference: Some(row.reference.clone()),
            recorded_reference: Some(rec.reference.clone()),
            settled_amount: Some(row.amount),
            recorded_amount: Some(rec.amount),
            time: row.time,
        };
        let mut agrees = true;
        if rec.entry != entry {
            // A payment is not a refund whatever their amounts: the amounts are not compared.
            mismatches.push(both(MismatchKind::StatusDiffers));
            agrees = false;
        } else if rec.amount != row.amount {
            mismatches.push(both(match entry {
                Entry::Payment => MismatchKind::AmountDiffers,
                Entry::Refund => MismatchKind::RefundAmountDiffers,
            }));
            agrees = false;
        }
        if rec.reference != row.reference {
            mismatches.push(both(MismatchKind::ReferenceDiffers));
            agrees = false;
        }
        if agrees {
            counts.matched += 1;
        }
    }

    let mut missing: Vec<(&str, &Recorded)> = by_id
        .iter()
        .filter(|(id, _)| !seen.contains_key(*id))
        .map(|(id, r)| (*id, *r))
        .chain(
            unnamed
                .iter()
                .filter(|(_, used)| !used)
                .map(|(r, _)| ("", *r)),
        )
        .collect();
    missing.sort_by(|a, b| (a.0, &a.1.reference).cmp(&(b.0, &b.1.reference)));
    for (id, r) in missing {
        mismatches.push(Mismatch {
            kind: match r.entry {
                Entry::Payment => MismatchKind::RecordedNotSettled,
                Entry::Refund => MismatchKind::RefundNotSettled,
            },
            transaction_id: id.to_owned(),
            settled_reference: None,
            recorded_reference: Some(r.reference.clone()),
            settled_amount: None,
            recorded_amount: Some(r.amount),
            time: r.time,
        });
    }
    mismatches.sort_by(|a, b| {
        (a.time, &a.transaction_id, a.kind).cmp(&(b.time, &b.transaction_id, b.kind))
    });
    Comparison { counts, mismatches }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32) -> DateTime<Utc> {
        format!("2026-11-30T{h:02}:00:00Z").parse().unwrap()
    }

    fn row(
        tx: &str,
        reference: &str,
        amount: i64,
        h: u32,
        status: SettlementStatus,
    ) -> SettlementRow {
        SettlementRow {
            transaction_id: tx.into(),
            reference: reference.into(),
            amount,
            time: at(h),
            status,
        }
    }

    fn paid(tx: &str, reference: &str, amount: i64, h: u32) -> SettlementRow {
        row(tx, reference, amount, h, SettlementStatus::Paid)
    }

    fn refunded(tx: &str, reference: &str, amount: i64, h: u32) -> SettlementRow {
        row(tx, reference, amount, h, SettlementStatus::Refunded)
    }

    fn rec(entry: Entry, tx: &str, reference: &str, amount: i64, h: u32) -> Recorded {
        Recorded {
            entry,
            transaction_id: (!tx.is_empty()).then(|| tx.into()),
            reference: reference.into(),
            amount,
            time: at(h),
        }
    }

    fn kinds(c: &Comparison) -> Vec<(MismatchKind, &str)> {
        c.mismatches
            .iter()
            .map(|m| (m.kind, m.transaction_id.as_str()))
            .collect()
    }

    #[test]
    fn a_day_that_agrees_has_no_mismatch_and_counts_everything() {
        let settled = [
            paid("T1", "FEE-2026-000001", 150_000, 1),
            paid("T2", "FEE-2026-000002", 200_000, 2),
            refunded("R1", "FEE-2026-000001", 150_000, 3),
        ];
        let recorded = [
            rec(Entry::Refund, "R1", "FEE-2026-000001", 150_000, 3),
            rec(Entry::Payment, "T2", "FEE-2026-000002", 200_000, 2),
            rec(Entry::Payment, "T1", "FEE-2026-000001", 150_000, 1),
        ];
        let c = compare(&settled, &recorded);
        assert!(c.mismatches.is_empty(), "{:?}", c.mismatches);
        assert_eq!(
            c.counts,
            Counts {
                settled_payments: 2,
                settled_refunds: 1,
                recorded_payments: 2,
                recorded_refunds: 1,
                matched: 3,
                settled_paid_amount: 350_000,
                settled_refunded_amount: 150_000,
                recorded_paid_amount: 350_000,
                recorded_refunded_amount: 150_000,
            }
        );
        assert_eq!(compare(&[], &[]), Comparison::default());
    }

    #[test]
    fn a_payment_at_the_platform_the_window_never_recorded() {
        let c = compare(&[paid("T1", "FEE-1", 150_000, 1)], &[]);
        assert_eq!(kinds(&c), vec![(MismatchKind::PaidNotRecorded, "T1")]);
        let m = &c.mismatches[0];
        assert_eq!(m.settled_amount, Some(150_000));
        assert_eq!(m.recorded_amount, None);
        assert_eq!(m.reference(), "FEE-1");
        assert_eq!(c.counts.matched, 0);
    }

    #[test]
    fn a_payment_recorded_but_missing_from_the_file() {
        let c = compare(&[], &[rec(Entry::Payment, "T1", "FEE-1", 150_000, 1)]);
        assert_eq!(kinds(&c), vec![(MismatchKind::RecordedNotSettled, "T1")]);
        let m = &c.mismatches[0];
        assert_eq!((m.settled_amount, m.recorded_amount), (None, Some(150_000)));
        assert_eq!(m.reference(), "FEE-1");
        assert_eq!(m.time, at(1));
    }

    #[test]
    fn amounts_that_differ_are_reported_with_both() {
        let c = compare(
            &[paid("T1", "FEE-1", 149_000, 1)],
            &[rec(Entry::Payment, "T1", "FEE-1", 150_000, 1)],
        );
        assert_eq!(kinds(&c), vec![(MismatchKind::AmountDiffers, "T1")]);
        let m = &c.mismatches[0];
        assert_eq!(
            (m.settled_amount, m.recorded_amount),
            (Some(149_000), Some(150_000))
        );
        assert_eq!(c.counts.matched, 0);
        assert_eq!(c.counts.settled_paid_amount, 149_000);
        assert_eq!(c.counts.recorded_paid_amount, 150_000);
    }

    #[test]
    fn refunds_have_their_own_kinds() {
        let c = compare(
            &[
                refunded("R1", "FEE-1", 150_000, 1),
                refunded("R3", "FEE-3", 90_000, 3),
            ],
            &[
                rec(Entry::Refund, "R2", "FEE-2", 80_000, 2),
                rec(Entry::Refund, "R3", "FEE-3", 100_000, 3),
            ],
        );
        assert_eq!(
            kinds(&c),
            vec![
                (MismatchKind::RefundNotRecorded, "R1"),
                (MismatchKind::RefundNotSettled, "R2"),
                (MismatchKind::RefundAmountDiffers, "R3"),
            ]
        );
        assert_eq!(c.counts.settled_refunds, 2);
        assert_eq!(c.counts.recorded_refunds, 2);
        assert_eq!(c.counts.settled_refunded_amount, 240_000);
    }

    #[test]
    fn the_same_transaction_under_another_reference_is_a_mismatch() {
        let c = compare(
            &[paid("T1", "FEE-9", 150_000, 1)],
            &[rec(Entry::Payment, "T1", "FEE-1", 150_000, 1)],
        );
        assert_eq!(kinds(&c), vec![(MismatchKind::ReferenceDiffers, "T1")]);
        let m = &c.mismatches[0];
        assert_eq!(m.settled_reference.as_deref(), Some("FEE-9"));
        assert_eq!(m.recorded_reference.as_deref(), Some("FEE-1"));
        assert_eq!(c.counts.matched, 0);
        // Both differences of one transaction are reported.
        let c = compare(
            &[paid("T1", "FEE-9", 1, 1)],
            &[rec(Entry::Payment, "T1", "FEE-1", 150_000, 1)],
        );
        assert_eq!(
            kinds(&c),
            vec![
                (MismatchKind::AmountDiffers, "T1"),
                (MismatchKind::ReferenceDiffers, "T1")
            ]
        );
    }

    #[test]
    fn a_payment_is_not_a_refund_and_a_row_counts_once() {
        let c = compare(
            &[
                paid("T1", "FEE-1", 150_000, 1),
                paid("T1", "FEE-1", 150_000, 2),
            ],
            &[rec(Entry::Refund, "T1", "FEE-1", 150_000, 1)],
        );
        assert_eq!(
            kinds(&c),
            vec![
                (MismatchKind::StatusDiffers, "T1"),
                (MismatchKind::DuplicateInFile, "T1"),
            ]
        );
        assert_eq!(c.counts.settled_payments, 2);
        assert_eq!(c.counts.matched, 0);
    }

    #[test]
    fn a_refund_known_only_from_its_notification_is_matched_on_its_reference() {
        // R1's own transaction is not known to the window yet: the file's refund row of the
        // same order is taken to be it, and its amount compared.
        let c = compare(
            &[
                refunded("R1", "FEE-1", 150_000, 1),
                refunded("R2", "FEE-2", 90_000, 2),
            ],
            &[
                rec(Entry::Refund, "", "FEE-1", 150_000, 1),
                rec(Entry::Refund, "", "FEE-2", 100_000, 2),
                rec(Entry::Refund, "", "FEE-3", 70_000, 3),
            ],
        );
        assert_eq!(
            kinds(&c),
            vec![
                (MismatchKind::RefundAmountDiffers, "R2"),
                (MismatchKind::RefundNotSettled, ""),
            ]
        );
        assert_eq!(c.mismatches[1].recorded_reference.as_deref(), Some("FEE-3"));
        assert_eq!(c.counts.matched, 1);
        // A payment row is never taken for such a refund.
        let c = compare(
            &[paid("T1", "FEE-1", 150_000, 1)],
            &[rec(Entry::Refund, "", "FEE-1", 150_000, 1)],
        );
        assert_eq!(
            kinds(&c),
            vec![
                (MismatchKind::RefundNotSettled, ""),
                (MismatchKind::PaidNotRecorded, "T1"),
            ]
        );
    }

    #[test]
    fn mismatches_come_in_time_order_and_kinds_have_stable_names() {
        let c = compare(
            &[paid("T5", "FEE-5", 1, 5), paid("T2", "FEE-2", 1, 2)],
            &[rec(Entry::Payment, "T3", "FEE-3", 1, 3)],
        );
        let order: Vec<_> = c
            .mismatches
            .iter()
            .map(|m| m.transaction_id.as_str())
            .collect();
        assert_eq!(order, vec!["T2", "T3", "T5"]);
        for k in MismatchKind::ALL {
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json, k.as_str());
        }
    }
}
