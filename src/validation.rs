//! The whole validation pipeline (XML stages, then business rules), shared by the service and
//! the offline `nsw validate` command so both give the same verdict.

use serde::Serialize;

use crate::domain::declaration::Declaration;
use crate::licensing::documents;
use crate::rules;
use crate::xml::{self, DocKind, Limits, Violation, XmlError};

/// Where in the pipeline a document stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Parse,
    Schema,
    Rules,
}

pub enum Verdict {
    /// Not usable as XML at all (HTTP 400/413).
    Unusable(XmlError),
    /// Well-formed but violating the schema or the rules (HTTP 422).
    Invalid {
        kind: Option<DocKind>,
        stage: Stage,
        violations: Vec<Violation>,
    },
    Valid(Valid),
}

pub enum Valid {
    Declaration(Box<Declaration>),
    /// Schema-valid document of a kind whose rules are applied by its own workflow.
    Other(DocKind),
}

impl Valid {
    pub fn kind(&self) -> DocKind {
        match self {
            Valid::Declaration(_) => DocKind::Declaration,
            Valid::Other(k) => *k,
        }
    }
}

pub struct Validator {
    pub limits: Limits,
    /// ISO 3166-1 code of this window's country (imports arrive here, exports leave from here).
    pub country: String,
    /// The window's date, against which a declaration's issue date is checked.
    pub clock: crate::calendar::Clock,
}

impl Validator {
    pub fn new(limits: Limits, country: impl Into<String>) -> Self {
        Validator {
            limits,
            country: country.into(),
            clock: crate::calendar::Clock::default(),
        }
    }

    /// The same validator judging dates by `clock`.
    pub fn with_clock(mut self, clock: crate::calendar::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The verdict on `src`; its time goes to `nsw_validation_duration_seconds`.
    pub fn validate(&self, src: &[u8], expect: Option<DocKind>) -> Verdict {
        let started = std::time::Instant::now();
        let verdict = self.judge(src, expect);
        let (kind, outcome) = match &verdict {
            Verdict::Unusable(_) => (expect, "unusable"),
            Verdict::Invalid { kind, .. } => (kind.or(expect), "invalid"),
            Verdict::Valid(v) => (Some(v.kind()), "valid"),
        };
        crate::metrics::validation_time(
            kind.map_or("unknown", DocKind::name),
            outcome,
            started.elapsed(),
        );
        verdict
    }

    fn judge(&self, src: &[u8], expect: Option<DocKind>) -> Verdict {
        let valid = match xml::check(src, &self.limits, expect) {
            Err(e) => return Verdict::Unusable(e),
            Ok(Err(refused)) => {
                return Verdict::Invalid {
                    kind: refused.kind,
                    stage: Stage::Schema,
                    violations: refused.violations,
                }
            }
            Ok(Ok(v)) => v,
        };
        match valid.kind {
            DocKind::Declaration => {
                match rules::declaration::check(&valid.tree, &self.country, self.clock.today()) {
                    Ok(d) => Verdict::Valid(Valid::Declaration(Box::new(d))),
                    Err(violations) => Verdict::Invalid {
                        kind: Some(DocKind::Declaration),
                        stage: Stage::Rules,
                        violations,
                    },
                }
            }
            // The same rules the service applies to these kinds before any workflow step, so
            // `nsw validate` and the API agree. Rules of certificates of origin depend on who
            // issues them (this window or a partner) and run in those workflows.
            DocKind::LicenceApplication => {
                other_rules(valid.kind, documents::read_application(&valid.tree).err())
            }
            DocKind::Licence => other_rules(valid.kind, documents::read_licence(&valid.tree).err()),
            other => Verdict::Valid(Valid::Other(other)),
        }
    }
}

fn other_rules(kind: DocKind, violations: Option<Vec<Violation>>) -> Verdict {
    match violations {
        None => Verdict::Valid(Valid::Other(kind)),
        Some(violations) => Verdict::Invalid {
            kind: Some(kind),
            stage: Stage::Rules,
            violations,
        },
    }
}
