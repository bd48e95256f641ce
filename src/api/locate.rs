//! Positions for violations found against stored data (licences, routing), which the store
//! reports by path only: the document is parsed again to find line and column.

use crate::error::ApiError;
use crate::store::StoreError;
use crate::xml::{Limits, Tree};

pub fn store_error(e: StoreError, src: &[u8], limits: &Limits) -> ApiError {
    match e {
        StoreError::Rejected(mut violations) => {
            if let Ok(tree) = Tree::parse(src, limits) {
                for v in &mut violations {
                    let pos = tree.find(&v.path).map(|n| tree.position(n));
                    if let Some(p) = pos {
                        v.line = p.line;
                        v.column = p.column;
                    }
                }
            }
            ApiError::Invalid { violations }
        }
        other => other.into(),
    }
}
