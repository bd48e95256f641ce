//! The `documents` table: every accepted document's exact bytes with their SHA-256.
//!
//! A large body is streamed to PostgreSQL with `COPY … FROM STDIN (FORMAT binary)` in pieces
//! of [`PIECE`] bytes, so storing it costs the server no copy of the whole body: a bound
//! statement parameter would be copied once into the statement's message and once more into
//! the connection's write buffer (issue 14: a 10 MB document within 4× its size).

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::SinkExt;
use uuid::Uuid;

use super::StoreError;

/// Bodies from this size on are streamed (bytes).
pub const STREAMED_FROM: usize = 256 * 1024;

/// Size of the pieces a streamed body is sent in (bytes).
const PIECE: usize = 64 * 1024;

/// Stores `body` as document `id` of `kind` (e.g. `declaration`, `licence-application`),
/// received at the transaction's time (`now()`), within `tx`. `sha256` is the body's digest;
/// the table checks that `size` matches the body.
///
/// Errors: the database's (a duplicate id, a lost connection).
pub async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    id: Uuid,
    kind: &str,
    sha256: &[u8; 32],
    body: &[u8],
) -> Result<(), StoreError> {
    let size = i32::try_from(body.len())
        .map_err(|_| StoreError::Conflict("a document over 2 GiB cannot be stored".into()))?;
    if body.len() < STREAMED_FROM {
        tx.execute(
            "INSERT INTO documents (id, kind, sha256, size, body, received_at)
             VALUES ($1, $2, $3, $4, $5, now())",
            &[&id, &kind, &&sha256[..], &size, &body],
        )
        .await?;
        return Ok(());
    }
    // The same time as `now()` in the statements around it: the transaction's start.
    let now: DateTime<Utc> = tx.query_one("SELECT now()", &[]).await?.get(0);
    let sink = tx
        .copy_in(
            "COPY documents (id, kind, sha256, size, body, received_at) FROM STDIN (FORMAT binary)",
        )
        .await?;
    futures_util::pin_mut!(sink);
    let mut head = BytesMut::with_capacity(128 + kind.len());
    // The binary COPY header: signature, flags, no header extension.
    head.put_slice(b"PGCOPY\n\xff\r\n\0");
    head.put_i32(0);
    head.put_i32(0);
    // One row of six fields, each a length and its bytes in the type's binary form.
    head.put_i16(6);
    head.put_i32(16);
    head.put_slice(id.as_bytes());
    head.put_i32(kind.len() as i32);
    head.put_slice(kind.as_bytes());
    head.put_i32(32);
    head.put_slice(sha256);
    head.put_i32(4);
    head.put_i32(size);
    head.put_i32(size);
    sink.send(head.freeze()).await?;
    for piece in body.chunks(PIECE) {
        sink.send(Bytes::copy_from_slice(piece)).await?;
    }
    let mut tail = BytesMut::with_capacity(14);
    tail.put_i32(8);
    tail.put_i64(microseconds_since_2000(now));
    // The end of the data.
    tail.put_i16(-1);
    sink.send(tail.freeze()).await?;
    sink.finish().await?;
    Ok(())
}

/// A timestamptz in PostgreSQL's binary form: microseconds since 2000-01-01 00:00 UTC.
fn microseconds_since_2000(t: DateTime<Utc>) -> i64 {
    let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    (t - epoch).num_microseconds().unwrap_or(i64::MAX)
}
