//! An uploaded document shown as numbered lines with every error beside the line it points to:
//! the refusal page of the declaration upload.

use crate::xml::Violation;

/// Documents longer than this show only the lines around their errors.
pub const FULL_LISTING_LINES: usize = 400;
/// Lines shown before and after each error line in a long document.
pub const CONTEXT: usize = 3;

/// One error as shown.
#[derive(Debug, Clone)]
pub struct Shown {
    pub code: String,
    pub message: String,
    pub path: String,
    pub column: u32,
}

impl From<&Violation> for Shown {
    fn from(v: &Violation) -> Self {
        Shown {
            code: v.code.to_owned(),
            message: v.message.clone(),
            path: v.path.clone(),
            column: v.column,
        }
    }
}

/// A row of the listing: a line of the document (with its errors, shown in the row after it),
/// or a gap standing for lines left out.
pub struct Row {
    pub number: usize,
    pub text: String,
    pub gap: bool,
    pub errors: Vec<Shown>,
}

/// The listing of `bytes` with `errors` at their lines, and the errors that name no line of it.
pub struct Listing {
    pub rows: Vec<Row>,
    pub unplaced: Vec<Shown>,
    pub total: usize,
    /// Whether only the lines around the errors are shown.
    pub excerpt: bool,
}

/// The document's text as shown: UTF-8 (invalid bytes replaced), one byte-order mark dropped.
pub fn text_of(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn listing(bytes: &[u8], errors: &[(Option<u32>, Shown)]) -> Listing {
    let text = text_of(bytes);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.len() > 1 && lines.last() == Some(&"") {
        lines.pop();
    }
    let n = lines.len();
    let mut at: Vec<Vec<Shown>> = vec![Vec::new(); n + 1];
    let mut unplaced = Vec::new();
    for (line, e) in errors {
        match line.map(|l| l as usize) {
            Some(l) if (1..=n).contains(&l) => at[l].push(e.clone()),
            _ => unplaced.push(e.clone()),
        }
    }
    let excerpt = n > FULL_LISTING_LINES;
    let mut keep = vec![!excerpt; n + 1];
    if excerpt {
        let bad: Vec<usize> = (1..=n).filter(|&l| !at[l].is_empty()).collect();
        for l in bad {
            let (from, to) = (l.saturating_sub(CONTEXT).max(1), (l + CONTEXT).min(n));
            keep[from..=to].iter_mut().for_each(|k| *k = true);
        }
    }
    let mut rows = Vec::new();
    let mut in_gap = false;
    for l in 1..=n {
        if keep[l] {
            in_gap = false;
            rows.push(Row {
                number: l,
                text: lines[l - 1].trim_end_matches('\r').to_owned(),
                gap: false,
                errors: std::mem::take(&mut at[l]),
            });
        } else if !in_gap {
            in_gap = true;
            rows.push(Row {
                number: l,
                text: String::new(),
                gap: true,
                errors: Vec::new(),
            });
        }
    }
    Listing {
        rows,
        unplaced,
        total: n,
        excerpt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(code: &str) -> Shown {
        Shown {
            code: code.into(),
            message: "m".into(),
            path: "/A".into(),
            column: 1,
        }
    }

    #[test]
    fn short_documents_show_every_line_with_errors_beside_them() {
        let l = listing(
            b"\xEF\xBB\xBF<a>\r\n<b/>\n</a>\n",
            &[(Some(2), e("X")), (None, e("Y")), (Some(9), e("Z"))],
        );
        assert_eq!(l.total, 3);
        assert_eq!(l.rows.len(), 3);
        assert_eq!(l.rows[0].text, "<a>");
        assert_eq!(l.rows[1].errors[0].code, "X");
        assert_eq!(l.unplaced.len(), 2);
    }

    #[test]
    fn long_documents_show_the_lines_around_errors_with_gaps() {
        let doc: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        let l = listing(doc.as_bytes(), &[(Some(500), e("X"))]);
        assert!(l.excerpt);
        let shown: Vec<usize> = l.rows.iter().filter(|r| !r.gap).map(|r| r.number).collect();
        assert_eq!(shown, (497..=503).collect::<Vec<_>>());
        assert_eq!(l.rows.iter().filter(|r| r.gap).count(), 2);
    }
}
