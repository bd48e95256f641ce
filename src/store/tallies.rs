//! The tallies the database keeps of the exchange (migration 0019): `outbox_tally` (messages
//! sent, by partner, document type and status) and `inbound_tally` (messages received, by
//! partner and document type). Triggers append a row or two per statement that moves
//! messages; [`fold`] folds each into one row per key, so that reading them (metrics, the
//! console's partners page) costs a few hundred rows at most, whatever the history.

use deadpool_postgres::GenericClient;

use super::StoreError;

/// Rows a tally may hold before [`fold`] folds it.
pub const FOLD_FROM: i32 = 512;

/// Folds each tally that holds at least `at_least` rows into one row per key; returns the
/// rows written (outbox, inbound), 0 for a tally not due. Safe beside writers and other
/// folds: rows appended meanwhile are not in the fold's snapshot and wait for the next one.
pub async fn fold<C: GenericClient>(client: &C, at_least: i32) -> Result<(i32, i32), StoreError> {
    let row = client
        .query_one(
            "SELECT outbox_tally_fold($1), inbound_tally_fold($1)",
            &[&at_least],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
