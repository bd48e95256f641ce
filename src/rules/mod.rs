//! Business rules: checks past the schema, each with a stable code.

pub mod declaration;

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::xml::{Tree, Violation};

/// Collects violations with their positions while rules read a schema-valid tree.
/// Most violations one document reports (as for schema violations): enough for any sender to
/// fix its document, and a bound on what a document full of errors costs to answer.
pub const MAX_VIOLATIONS: usize = 500;

pub struct Checker<'t, 'a> {
    pub tree: &'t Tree<'a>,
    violations: Vec<Violation>,
}

impl<'t, 'a> Checker<'t, 'a> {
    pub fn new(tree: &'t Tree<'a>) -> Self {
        Checker {
            tree,
            violations: Vec::new(),
        }
    }

    pub fn report(&mut self, node: usize, code: &'static str, message: String) {
        if self.violations.len() >= MAX_VIOLATIONS {
            return;
        }
        let pos = self.tree.position(node);
        self.violations.push(Violation {
            line: pos.line,
            column: pos.column,
            path: self.tree.path(node),
            code,
            message,
        });
    }

    pub fn report_at(&mut self, parent: usize, chain: &str, code: &'static str, message: String) {
        let node = self.tree.at(parent, chain).unwrap_or(parent);
        self.report(node, code, message);
    }

    pub fn report_attr(&mut self, node: usize, attr: &str, code: &'static str, message: String) {
        if self.violations.len() >= MAX_VIOLATIONS {
            return;
        }
        let pos = self.tree.position(node);
        self.violations.push(Violation {
            line: pos.line,
            column: pos.column,
            path: self.tree.attr_path(node, attr),
            code,
            message,
        });
    }

    pub fn text_at(&self, parent: usize, chain: &str) -> &'t str {
        let tree: &'t Tree<'a> = self.tree;
        tree.at(parent, chain)
            .map(|n| tree.text(n))
            .unwrap_or_default()
    }

    pub fn attr_at(&self, parent: usize, chain: &str, attr: &str) -> &'t str {
        let tree: &'t Tree<'a> = self.tree;
        tree.at(parent, chain)
            .and_then(|n| tree.attr(n, attr))
            .unwrap_or_default()
    }

    /// The exact value of a decimal element, or `None` (reported, located) when its text is
    /// not one. Absent elements give `None` without a report: the schema decides presence.
    pub fn decimal_at(&mut self, parent: usize, chain: &str) -> Option<Decimal> {
        let node = self.tree.at(parent, chain)?;
        let text = self.tree.text(node);
        match parse_decimal(text) {
            Some(d) => Some(d),
            None => {
                self.report(
                    node,
                    "NUMBER_INVALID",
                    format!("'{text}' is not a decimal number the window can record exactly"),
                );
                None
            }
        }
    }

    /// A quantity the window records (`numeric(18, 3)`: at most 15 digits before the decimal
    /// point, more than zero): its exact value, or `None` with a located
    /// `QUANTITY_OUT_OF_RANGE`.
    pub fn quantity_at(&mut self, parent: usize, chain: &str) -> Option<Decimal> {
        let q = self.decimal_at(parent, chain)?;
        if q > Decimal::ZERO && q < quantity_limit() && q.scale() <= 3 {
            return Some(q);
        }
        let node = self.tree.at(parent, chain).unwrap_or(parent);
        self.report(
            node,
            "QUANTITY_OUT_OF_RANGE",
            format!(
                "quantity {q} cannot be recorded: quantities are more than 0 and below 10^15,                  with at most 3 decimals"
            ),
        );
        None
    }

    /// The exact value of an integer element, or `None` (reported, located).
    pub fn int_at(&mut self, parent: usize, chain: &str) -> Option<u32> {
        let node = self.tree.at(parent, chain)?;
        let text = self.tree.text(node);
        match text.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.report(
                    node,
                    "NUMBER_INVALID",
                    format!("'{text}' is not a whole number the window can record"),
                );
                None
            }
        }
    }

    /// The calendar date of a date element, or `None`: absent (the schema decides presence),
    /// or reported at its position as `DATE_OUT_OF_RANGE` / `DATE_INVALID`.
    pub fn date_at(&mut self, parent: usize, chain: &str) -> Option<NaiveDate> {
        let node = self.tree.at(parent, chain)?;
        let text = self.tree.text(node);
        match parse_date(text) {
            Ok(d) => Some(d),
            Err(DateProblem::OutOfRange) => {
                self.report(
                    node,
                    "DATE_OUT_OF_RANGE",
                    format!(
                        "date '{text}' is outside the years the window records ({} to {})",
                        FIRST_DATE, LAST_DATE
                    ),
                );
                None
            }
            Err(DateProblem::Invalid) => {
                self.report(
                    node,
                    "DATE_INVALID",
                    format!("'{text}' is not a calendar date (YYYY-MM-DD)"),
                );
                None
            }
        }
    }

    pub fn finish(mut self) -> Vec<Violation> {
        self.violations.sort_by_key(|v| (v.line, v.column));
        self.violations
    }
}

/// xs:decimal lexical forms ("+1.5", ".5", "5.", "007.500") as exact decimals: leading zeros
/// of the integer part and trailing zeros of the fraction are dropped first (they do not count
/// as digits in XML Schema either), so a value is either read exactly or refused (`None`),
/// never rounded.
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    // Decimal holds 28 significant digits exactly; beyond that it would round.
    if int.len() + frac.len() > 28 {
        return None;
    }
    let int = if int.is_empty() { "0" } else { int };
    let text = if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    };
    let value = Decimal::from_str(&text).ok()?;
    Some(if negative { -value } else { value })
}

/// The largest quantity plus one the window records: `numeric(18, 3)` keeps 15 digits before
/// the decimal point.
pub fn quantity_limit() -> Decimal {
    Decimal::from(1_000_000_000_000_000_i64)
}

/// The dates the window records: years 0001 to 9999 (what PostgreSQL `date`, chrono and the
/// four-digit `xs:date` form the window writes have in common).
pub const FIRST_DATE: &str = "0001-01-01";
pub const LAST_DATE: &str = "9999-12-31";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateProblem {
    /// A well-formed date whose year lies outside 0001..9999 (e.g. `12026-03-16`, `-0044-03-15`).
    OutOfRange,
    /// Not an `xs:date` at all.
    Invalid,
}

/// An `xs:date` (`[-]YYYY[Y…]-MM-DD` with an optional time zone, which does not change the
/// calendar date) as the date it names, exactly. Years outside 0001..9999 are refused, never
/// defaulted.
pub fn parse_date(s: &str) -> Result<NaiveDate, DateProblem> {
    let s = s.trim();
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let year_len = body.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &body[year_len..];
    let (month, day, zone) = match (
        rest.get(..1),
        rest.get(1..3),
        rest.get(3..4),
        rest.get(4..6),
    ) {
        (Some("-"), Some(m), Some("-"), Some(d)) => (m, d, &rest[6..]),
        _ => return Err(DateProblem::Invalid),
    };
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && zone.as_bytes()[3] == b':'
            && zone[1..3].bytes().all(|b| b.is_ascii_digit())
            && zone[4..].bytes().all(|b| b.is_ascii_digit()));
    if year_len < 4
        || !zone_ok
        || !month.bytes().all(|b| b.is_ascii_digit())
        || !day.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(DateProblem::Invalid);
    }
    let year_text = &body[..year_len];
    if negative || year_len > 4 || year_text == "0000" {
        return Err(DateProblem::OutOfRange);
    }
    let (Ok(y), Ok(m), Ok(d)) = (
        year_text.parse::<i32>(),
        month.parse::<u32>(),
        day.parse::<u32>(),
    ) else {
        return Err(DateProblem::Invalid);
    };
    NaiveDate::from_ymd_opt(y, m, d).ok_or(DateProblem::Invalid)
}

/// Whether a date lies in the years the window records (for dates that do not come from a
/// document, e.g. an officer's decision).
pub fn date_recordable(d: NaiveDate) -> bool {
    (1..=9999).contains(&chrono::Datelike::year(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_exactly_or_refused() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(parse_date("2026-03-16"), Ok(d(2026, 3, 16)));
        assert_eq!(parse_date(" 2026-03-16Z "), Ok(d(2026, 3, 16)));
        assert_eq!(parse_date("2026-03-16+07:00"), Ok(d(2026, 3, 16)));
        assert_eq!(parse_date("2026-03-16-12:00"), Ok(d(2026, 3, 16)));
        assert_eq!(parse_date("0001-01-01"), Ok(d(1, 1, 1)));
        assert_eq!(parse_date("9999-12-31"), Ok(d(9999, 12, 31)));
        for out in ["12026-03-16", "10000-01-01", "-0001-03-16", "0000-01-01"] {
            assert_eq!(parse_date(out), Err(DateProblem::OutOfRange), "{out}");
        }
        for bad in [
            "2026-02-30",
            "2026-3-16",
            "26-03-16",
            "2026-03-16T00:00",
            "",
            "x",
        ] {
            assert_eq!(parse_date(bad), Err(DateProblem::Invalid), "{bad}");
        }
    }

    #[test]
    fn decimals_are_read_exactly_or_refused() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(parse_decimal("+1.5"), Some(d("1.5")));
        assert_eq!(parse_decimal(".5"), Some(d("0.5")));
        assert_eq!(parse_decimal("5."), Some(d("5")));
        assert_eq!(parse_decimal("-.25"), Some(d("-0.25")));
        assert_eq!(
            parse_decimal("000000000000000000000000000000050.000"),
            Some(d("50"))
        );
        assert_eq!(
            parse_decimal("1.0000000000000000000000000000000000"),
            Some(d("1"))
        );
        assert_eq!(
            parse_decimal("999999999999999999.99"),
            Some(d("999999999999999999.99"))
        );
        // More significant digits than a Decimal holds would be rounded: refused instead.
        assert_eq!(parse_decimal("1.00000000000000000000000000001"), None);
        for bad in ["", ".", "-", "1e5", "1,5", "--1", "+-1"] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }
}
