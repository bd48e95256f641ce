//! Business rules: checks past the schema, each with a stable code.

pub mod declaration;

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::xml::{Tree, Violation};

/// Collects violations with their positions while rules read a schema-valid tree.
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

    pub fn decimal_at(&self, parent: usize, chain: &str) -> Decimal {
        parse_decimal(self.text_at(parent, chain)).unwrap_or_default()
    }

    pub fn date_at(&self, parent: usize, chain: &str) -> NaiveDate {
        self.opt_date_at(parent, chain).unwrap_or_default()
    }

    pub fn opt_date_at(&self, parent: usize, chain: &str) -> Option<NaiveDate> {
        self.tree
            .at(parent, chain)
            .and_then(|n| declaration::parse_date(self.tree.text(n)))
    }

    pub fn finish(mut self) -> Vec<Violation> {
        self.violations.sort_by_key(|v| (v.line, v.column));
        self.violations
    }
}

/// xs:decimal lexical forms ("+1.5", ".5", "5.") as exact decimals.
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim().trim_start_matches('+');
    let s = s.strip_suffix('.').unwrap_or(s);
    let normalized = if let Some(rest) = s.strip_prefix("-.") {
        format!("-0.{rest}")
    } else if let Some(rest) = s.strip_prefix('.') {
        format!("0.{rest}")
    } else {
        s.to_owned()
    };
    Decimal::from_str(&normalized).ok()
}
