//! Licence applications and electronic licences as typed values: read from schema-valid trees
//! (with their own business rules), and the licence document the window writes when an agency
//! issues one.

use chrono::NaiveDate;

use crate::codelists::CodeLists;
use crate::rules::Checker;
use crate::xml::tree::ROOT;
use crate::xml::{Tree, Violation};

pub use crate::domain::licence::{Address, Application, GoodsLine, Licence, Party};

fn party(c: &mut Checker, node: usize) -> Party {
    let opt = |c: &Checker, chain: &str| {
        let t = c.text_at(node, chain);
        (!t.is_empty()).then(|| t.to_owned())
    };
    let country = c.text_at(node, "Address/Country").to_owned();
    if !CodeLists::get().country_known(&country) {
        c.report_at(
            node,
            "Address/Country",
            "COUNTRY_UNKNOWN",
            format!("'{country}' is not an ISO 3166-1 alpha-2 country code"),
        );
    }
    Party {
        id: c.text_at(node, "ID").to_owned(),
        name: c.text_at(node, "Name").to_owned(),
        address: Address {
            street: opt(c, "Address/Street"),
            city: c.text_at(node, "Address/City").to_owned(),
            post_code: opt(c, "Address/PostCode"),
            country,
        },
    }
}

/// The goods lines; `None` for a line whose quantity could not be read (reported).
fn lines(c: &mut Checker, quantity: &str) -> Vec<Option<GoodsLine>> {
    let codes = CodeLists::get();
    let tree = c.tree;
    let mut out = Vec::new();
    for (i, n) in tree.children(ROOT, "Line").enumerate() {
        let expected = i as u32 + 1;
        let number = c.int_at(n, "Number");
        if let Some(number) = number.filter(|n| *n != expected) {
            c.report_at(
                n,
                "Number",
                "LINE_NUMBER_SEQUENCE",
                format!("line {number} must be numbered {expected}"),
            );
        }
        let number = number.unwrap_or(expected) as i32;
        let hs = c.text_at(n, "HSCode").to_owned();
        if !codes.hs_known(&hs) {
            c.report_at(
                n,
                "HSCode",
                "HS_UNKNOWN",
                format!("'{hs}' is not an HS 2022 subheading or national tariff line"),
            );
        }
        let unit = c.attr_at(n, quantity, "unit").to_owned();
        if !codes.unit_known(&unit) {
            if let Some(q) = tree.at(n, quantity) {
                c.report_attr(
                    q,
                    "unit",
                    "UNIT_UNKNOWN",
                    format!("'{unit}' is not a UN/ECE Rec 20 unit"),
                );
            }
        }
        let description = c.text_at(n, "Description").to_owned();
        out.push(c.quantity_at(n, quantity).map(|quantity| GoodsLine {
            number,
            hs_code: hs,
            description,
            quantity,
            unit,
        }));
    }
    out
}

fn validity_order(
    c: &mut Checker,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    to_chain: &str,
    code: &'static str,
) {
    let (Some(from), Some(to)) = (from, to) else {
        return;
    };
    if to < from {
        c.report_at(
            ROOT,
            to_chain,
            code,
            format!("the validity ends ({to}) before it starts ({from})"),
        );
    }
}

/// Rules of a licence application past its schema.
pub fn read_application(tree: &Tree) -> Result<Application, Vec<Violation>> {
    let mut c = Checker::new(tree);
    let applicant = match tree.child(ROOT, "Applicant") {
        Some(n) => party(&mut c, n),
        None => return Err(c.finish()),
    };
    let valid_from = c.date_at(ROOT, "Validity/From");
    let valid_to = c.date_at(ROOT, "Validity/To");
    validity_order(
        &mut c,
        valid_from,
        valid_to,
        "Validity/To",
        "VALIDITY_ORDER",
    );
    let codes = CodeLists::get();
    for chain in ["ExportCountry", "ImportCountry"] {
        let v = c.text_at(ROOT, chain).to_owned();
        if !codes.country_known(&v) {
            c.report_at(
                ROOT,
                chain,
                "COUNTRY_UNKNOWN",
                format!("'{v}' is not an ISO 3166-1 alpha-2 country code"),
            );
        }
    }
    let lines = lines(&mut c, "Quantity");
    let agency = c.text_at(ROOT, "Agency");
    let (Some(valid_from), Some(valid_to), Some(lines)) =
        (valid_from, valid_to, lines.into_iter().collect())
    else {
        return Err(incomplete(c));
    };
    let app = Application {
        reference: c.text_at(ROOT, "Header/Reference").to_owned(),
        application_type: c.text_at(ROOT, "Header/ApplicationType").to_owned(),
        direction: c.text_at(ROOT, "Header/Direction").to_owned(),
        agency: (!agency.is_empty()).then(|| agency.to_owned()),
        applicant,
        export_country: c.text_at(ROOT, "ExportCountry").to_owned(),
        import_country: c.text_at(ROOT, "ImportCountry").to_owned(),
        valid_from,
        valid_to,
        lines,
    };
    let v = c.finish();
    if v.is_empty() {
        Ok(app)
    } else {
        Err(v)
    }
}

/// Rules of an electronic licence past its schema.
pub fn read_licence(tree: &Tree) -> Result<Licence, Vec<Violation>> {
    let mut c = Checker::new(tree);
    let holder = match tree.child(ROOT, "Holder") {
        Some(n) => party(&mut c, n),
        None => return Err(c.finish()),
    };
    let valid_from = c.date_at(ROOT, "ValidFrom");
    let valid_to = c.date_at(ROOT, "ValidTo");
    validity_order(&mut c, valid_from, valid_to, "ValidTo", "VALIDITY_ORDER");
    let lines = lines(&mut c, "QuantityAllowance");
    let issue_date = c.date_at(ROOT, "IssueDate");
    let (Some(valid_from), Some(valid_to), Some(issue_date), Some(lines)) = (
        valid_from,
        valid_to,
        issue_date,
        lines.into_iter().collect(),
    ) else {
        return Err(incomplete(c));
    };
    let lic = Licence {
        number: c.text_at(ROOT, "Number").to_owned(),
        licence_type: c.text_at(ROOT, "Type").to_owned(),
        agency: c.text_at(ROOT, "Agency/Code").to_owned(),
        holder,
        direction: c.text_at(ROOT, "Direction").to_owned(),
        issue_date,
        valid_from,
        valid_to,
        lines,
    };
    let v = c.finish();
    if v.is_empty() {
        Ok(lic)
    } else {
        Err(v)
    }
}

/// A licence deposited with the window must still be valid on the window's date `today`: one
/// whose validity has ended covers nothing (`LICENCE_VALIDITY_ENDED`, at its `ValidTo`), and
/// one dated after `today` is not issued yet (`ISSUE_DATE_IN_FUTURE`, at its `IssueDate`).
pub fn check_not_ended(
    tree: &Tree,
    licence: &Licence,
    today: NaiveDate,
) -> Result<(), Vec<Violation>> {
    let mut c = Checker::new(tree);
    if licence.valid_to < today {
        c.report_at(
            ROOT,
            "ValidTo",
            "LICENCE_VALIDITY_ENDED",
            format!(
                "licence {} was valid until {}, before the window's date {today}",
                licence.number, licence.valid_to
            ),
        );
    }
    // A licence is deposited once issued: an issue date after the window's date is a date
    // that has not come.
    if licence.issue_date > today {
        c.report_at(
            ROOT,
            "IssueDate",
            "ISSUE_DATE_IN_FUTURE",
            format!(
                "licence {} is dated {}, after the window's date {today}",
                licence.number, licence.issue_date
            ),
        );
    }
    let v = c.finish();
    if v.is_empty() {
        Ok(())
    } else {
        Err(v)
    }
}

/// The violations of a document some of whose values could not be read; each was reported
/// where it stands, and a value the schema requires but that is absent is a schema problem.
fn incomplete(c: Checker) -> Vec<Violation> {
    let tree = c.tree;
    let mut v = c.finish();
    if v.is_empty() {
        v.push(Violation {
            line: 1,
            column: 1,
            path: tree.path(ROOT),
            code: "XSD_CONTENT",
            message: "a value the schema requires is missing".into(),
        });
    }
    v
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// What an issuing agency decides beyond the application: number, date, and its own name.
pub struct Issue<'a> {
    pub number: &'a str,
    pub agency: &'a str,
    pub agency_name: &'a str,
    pub issue_date: NaiveDate,
    pub conditions: Option<&'a str>,
}

/// The electronic licence for an application, as UTF-8 XML in urn:nsw:licence:1.
pub fn write_licence(app: &Application, issue: &Issue) -> Vec<u8> {
    use std::fmt::Write;
    let licence_type = match app.application_type.as_str() {
        t @ ("IML" | "EXL" | "AIL" | "PQC" | "VHC" | "FSN" | "QIC" | "CAT" | "CIT") => t,
        _ => "OTH",
    };
    let h = &app.applicant;
    let mut x = String::with_capacity(2048);
    x.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Licence xmlns=\"urn:nsw:licence:1\">\n",
    );
    let _ = writeln!(x, "  <Number>{}</Number>", esc(issue.number));
    let _ = writeln!(x, "  <Type>{licence_type}</Type>");
    let _ = writeln!(
        x,
        "  <Agency>\n    <Code>{}</Code>\n    <Name>{}</Name>\n  </Agency>",
        esc(issue.agency),
        esc(issue.agency_name)
    );
    let _ = writeln!(
        x,
        "  <Holder>\n    <ID>{}</ID>\n    <Name>{}</Name>\n    <Address>",
        esc(&h.id),
        esc(&h.name)
    );
    if let Some(s) = &h.address.street {
        let _ = writeln!(x, "      <Street>{}</Street>", esc(s));
    }
    let _ = writeln!(x, "      <City>{}</City>", esc(&h.address.city));
    if let Some(p) = &h.address.post_code {
        let _ = writeln!(x, "      <PostCode>{}</PostCode>", esc(p));
    }
    let _ = writeln!(
        x,
        "      <Country>{}</Country>\n    </Address>\n  </Holder>",
        esc(&h.address.country)
    );
    let _ = writeln!(x, "  <Direction>{}</Direction>", esc(&app.direction));
    let _ = writeln!(x, "  <IssueDate>{}</IssueDate>", issue.issue_date);
    let _ = writeln!(x, "  <ValidFrom>{}</ValidFrom>", app.valid_from);
    let _ = writeln!(x, "  <ValidTo>{}</ValidTo>", app.valid_to);
    let _ = writeln!(
        x,
        "  <ApplicationReference>{}</ApplicationReference>",
        esc(&app.reference)
    );
    for l in &app.lines {
        let _ = writeln!(
            x,
            "  <Line>\n    <Number>{}</Number>\n    <HSCode>{}</HSCode>\n    <Description>{}</Description>\n    <QuantityAllowance unit=\"{}\">{}</QuantityAllowance>\n  </Line>",
            l.number,
            esc(&l.hs_code),
            esc(&l.description),
            esc(&l.unit),
            l.quantity.normalize()
        );
    }
    if let Some(c) = issue.conditions.filter(|c| !c.trim().is_empty()) {
        let _ = writeln!(x, "  <Conditions>{}</Conditions>", esc(c.trim()));
    }
    x.push_str("</Licence>\n");
    x.into_bytes()
}
