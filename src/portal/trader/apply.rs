//! The licence application form: the trader applies with a form, not an XML document. The
//! window writes the licence-application document from the form (the applicant block from the
//! party's profile) and files it through `licensing::submit`, the API's workflow, so the same
//! schema, rules and routing judge it. Each violation is shown beside the form field its path
//! names. Lines and attachments are added and removed without script: secondary submit buttons
//! (`action=add_line`, `remove_line_N` …) show the form again with one more or one less.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::{trader, Opt};
use crate::api::licence_applications::licensing_context;
use crate::api::AppState;
use crate::licensing;
use crate::portal::forms::{FieldErrors, FORM_LIMIT};
use crate::portal::{render_with, see_other, Page, Person, PortalError};
use crate::store::sessions::{self, Profile};
use crate::workflow::WorkflowError;
use crate::xml::{DocKind, Violation};

/// Kinds of licence the schema knows (`LicenceTypeCode`).
const APPLICATION_TYPES: [&str; 10] = [
    "IML", "EXL", "AIL", "PQC", "VHC", "FSN", "QIC", "CAT", "CIT", "OTH",
];
/// Common UN/ECE Recommendation 20 units.
const UNITS: [&str; 14] = [
    "KGM", "TNE", "GRM", "LTR", "MTQ", "MTR", "MTK", "H87", "C62", "NAR", "PR", "SET", "DZN", "KWH",
];
/// Kinds of supporting document (`SupportingDocumentTypeCode`).
const ATTACHMENT_TYPES: [&str; 8] = ["LIC", "COO", "PQC", "VHC", "FSN", "QIC", "CAT", "OTH"];
/// Lines and attachments a document may have (the schema's bounds).
const MAX_LINES: usize = 999;
const MAX_ATTACHMENTS: usize = 99;

#[derive(Debug, Default, Clone)]
struct LineForm {
    hs_code: String,
    description: String,
    quantity: String,
    unit: String,
    value: String,
    currency: String,
}

#[derive(Debug, Default, Clone)]
struct AttachmentForm {
    kind: String,
    reference: String,
    issue_date: String,
}

impl LineForm {
    /// Nothing typed (unit and currency have defaults and do not count).
    fn is_empty(&self) -> bool {
        [
            &self.hs_code,
            &self.description,
            &self.quantity,
            &self.value,
        ]
        .iter()
        .all(|v| v.trim().is_empty())
    }
}

/// Which form rows became which elements of the document written: a row left entirely empty
/// is not written (an empty goods line, or attachment, is only a row the form shows).
#[derive(Debug, Default)]
struct Rows {
    lines: Vec<usize>,
    attachments: Vec<usize>,
}

impl AttachmentForm {
    fn is_empty(&self) -> bool {
        self.reference.trim().is_empty() && self.issue_date.trim().is_empty()
    }
}

#[derive(Debug, Default, Clone)]
struct ApplyForm {
    application_type: String,
    direction: String,
    agency: String,
    reference: String,
    cp_id: String,
    cp_name: String,
    cp_street: String,
    cp_city: String,
    cp_post_code: String,
    cp_country: String,
    export_country: String,
    import_country: String,
    valid_from: String,
    valid_to: String,
    lines: Vec<LineForm>,
    attachments: Vec<AttachmentForm>,
}

/// `line_3_hs_code` → (3, "hs_code").
fn indexed<'a>(key: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let rest = key.strip_prefix(prefix)?;
    let (i, field) = rest.split_once('_')?;
    Some((i.parse().ok()?, field))
}

impl ApplyForm {
    fn blank(today: chrono::NaiveDate) -> ApplyForm {
        ApplyForm {
            reference: format!(
                "APP-{}-{:04X}",
                today.format("%Y%m%d"),
                rand::random::<u16>()
            ),
            lines: vec![LineForm {
                unit: "KGM".into(),
                currency: "USD".into(),
                ..LineForm::default()
            }],
            attachments: vec![AttachmentForm {
                kind: "OTH".into(),
                ..AttachmentForm::default()
            }],
            ..ApplyForm::default()
        }
    }

    /// The form, the CSRF token and the action of a posted body.
    fn parse(pairs: Vec<(String, String)>) -> (ApplyForm, String, String) {
        let mut f = ApplyForm::default();
        let (mut csrf, mut action) = (String::new(), String::new());
        let mut lines: BTreeMap<usize, LineForm> = BTreeMap::new();
        let mut attachments: BTreeMap<usize, AttachmentForm> = BTreeMap::new();
        for (k, v) in pairs {
            if let Some((i, field)) = indexed(&k, "line_").filter(|(i, _)| *i < MAX_LINES) {
                let l = lines.entry(i).or_default();
                match field {
                    "hs_code" => l.hs_code = v,
                    "description" => l.description = v,
                    "quantity" => l.quantity = v,
                    "unit" => l.unit = v,
                    "value" => l.value = v,
                    "currency" => l.currency = v,
                    _ => {}
                }
                continue;
            }
            if let Some((i, field)) =
                indexed(&k, "attachment_").filter(|(i, _)| *i < MAX_ATTACHMENTS)
            {
                let a = attachments.entry(i).or_default();
                match field {
                    "type" => a.kind = v,
                    "reference" => a.reference = v,
                    "issue_date" => a.issue_date = v,
                    _ => {}
                }
                continue;
            }
            match k.as_str() {
                "csrf" => csrf = v,
                "action" => action = v,
                "application_type" => f.application_type = v,
                "direction" => f.direction = v,
                "agency" => f.agency = v,
                "reference" => f.reference = v,
                "cp_id" => f.cp_id = v,
                "cp_name" => f.cp_name = v,
                "cp_street" => f.cp_street = v,
                "cp_city" => f.cp_city = v,
                "cp_post_code" => f.cp_post_code = v,
                "cp_country" => f.cp_country = v,
                "export_country" => f.export_country = v,
                "import_country" => f.import_country = v,
                "valid_from" => f.valid_from = v,
                "valid_to" => f.valid_to = v,
                _ => {}
            }
        }
        f.lines = lines.into_values().collect();
        f.attachments = attachments.into_values().collect();
        if f.lines.is_empty() {
            f.lines.push(LineForm::default());
        }
        (f, csrf, action)
    }

    /// The licence-application document of this form for `applicant`, filed on `today`.
    /// Optional elements left empty are left out; required ones are written even when empty,
    /// so the schema names them (and the message lands beside their field). Also answers, for
    /// each line and attachment written, the form row it came from.
    fn to_xml(&self, applicant: &Profile, today: chrono::NaiveDate) -> (Vec<u8>, Rows) {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        let mut rows = Rows::default();
        // Writing into a Vec cannot fail.
        let _ = write_document(&mut w, self, applicant, today, &mut rows);
        (w.into_inner(), rows)
    }
}

type W = Writer<Vec<u8>>;

fn start(w: &mut W, name: &str) -> std::io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name)))
}

fn end(w: &mut W, name: &str) -> std::io::Result<()> {
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn text(w: &mut W, name: &str, value: &str) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value.trim()))?;
    Ok(())
}

fn text_opt(w: &mut W, name: &str, value: &str) -> std::io::Result<()> {
    if value.trim().is_empty() {
        Ok(())
    } else {
        text(w, name, value)
    }
}

fn with_attr(
    w: &mut W,
    name: &str,
    attr: &str,
    attr_value: &str,
    value: &str,
) -> std::io::Result<()> {
    w.create_element(name)
        .with_attribute((attr, attr_value.trim()))
        .write_text_content(BytesText::new(value.trim()))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn party(
    w: &mut W,
    element: &str,
    id: &str,
    name: &str,
    street: &str,
    city: &str,
    post_code: &str,
    country: &str,
) -> std::io::Result<()> {
    start(w, element)?;
    text(w, "ID", id)?;
    text(w, "Name", name)?;
    start(w, "Address")?;
    text_opt(w, "Street", street)?;
    text(w, "City", city)?;
    text_opt(w, "PostCode", post_code)?;
    text(w, "Country", country)?;
    end(w, "Address")?;
    end(w, element)
}

fn write_document(
    w: &mut W,
    f: &ApplyForm,
    applicant: &Profile,
    today: chrono::NaiveDate,
    rows: &mut Rows,
) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut root = BytesStart::new("LicenceApplication");
    root.push_attribute(("xmlns", DocKind::LicenceApplication.namespace()));
    w.write_event(Event::Start(root))?;
    start(w, "Header")?;
    text(w, "Reference", &f.reference)?;
    text(w, "ApplicationType", &f.application_type)?;
    text(w, "Direction", &f.direction)?;
    text(w, "SubmissionDate", &today.to_string())?;
    end(w, "Header")?;
    party(
        w,
        "Applicant",
        &applicant.id,
        &applicant.name,
        applicant.street.as_deref().unwrap_or(""),
        applicant.city.as_deref().unwrap_or(""),
        applicant.post_code.as_deref().unwrap_or(""),
        applicant.country.as_deref().unwrap_or(""),
    )?;
    text_opt(w, "Agency", &f.agency)?;
    party(
        w,
        "Counterparty",
        &f.cp_id,
        &f.cp_name,
        &f.cp_street,
        &f.cp_city,
        &f.cp_post_code,
        &f.cp_country,
    )?;
    text(w, "ExportCountry", &f.export_country)?;
    text(w, "ImportCountry", &f.import_country)?;
    start(w, "Validity")?;
    text(w, "From", &f.valid_from)?;
    text(w, "To", &f.valid_to)?;
    end(w, "Validity")?;
    // Rows left empty are not written, unless all are: the schema then says a line is needed.
    let all_empty = f.lines.iter().all(LineForm::is_empty);
    for (i, l) in f.lines.iter().enumerate() {
        if l.is_empty() && !(all_empty && i == 0) {
            continue;
        }
        rows.lines.push(i);
        start(w, "Line")?;
        text(w, "Number", &rows.lines.len().to_string())?;
        text(w, "HSCode", &l.hs_code)?;
        text(w, "Description", &l.description)?;
        with_attr(w, "Quantity", "unit", &l.unit, &l.quantity)?;
        if !l.value.trim().is_empty() {
            with_attr(w, "Value", "currency", &l.currency, &l.value)?;
        }
        end(w, "Line")?;
    }
    for (i, a) in f.attachments.iter().enumerate() {
        if a.is_empty() {
            continue;
        }
        rows.attachments.push(i);
        start(w, "Attachment")?;
        text(w, "Type", &a.kind)?;
        text(w, "Reference", &a.reference)?;
        text_opt(w, "IssueDate", &a.issue_date)?;
        end(w, "Attachment")?;
    }
    end(w, "LicenceApplication")?;
    w.get_mut().push(b'\n');
    Ok(())
}

/// `Line[2]` → ("Line", 2); `Line` → ("Line", 1).
fn step(s: &str) -> (&str, usize) {
    match s.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse().unwrap_or(1)),
        None => (s, 1),
    }
}

/// The form field a violation's path names, if any (`/LicenceApplication/Line[2]/HSCode` →
/// `line_1_hs_code` when the second line written is the form's second row); `rows` maps the
/// lines and attachments written to form rows.
fn field_of(path: &str, rows: &Rows) -> Option<String> {
    let steps: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if steps.first().map(|s| step(s).0) != Some("LicenceApplication") {
        return None;
    }
    let rest = &steps[1..];
    let (first, n) = step(rest.first()?);
    let second = rest.get(1).map(|s| step(s).0);
    let third = rest.get(2).map(|s| step(s).0);
    let f = match (first, second, third) {
        ("Header", Some("Reference"), _) => "reference",
        ("Header", Some("ApplicationType"), _) => "application_type",
        ("Header", Some("Direction"), _) => "direction",
        ("Agency", _, _) => "agency",
        ("Counterparty", Some("Name"), _) => "cp_name",
        ("Counterparty", Some("Address"), Some("Street")) => "cp_street",
        ("Counterparty", Some("Address"), Some("City")) => "cp_city",
        ("Counterparty", Some("Address"), Some("PostCode")) => "cp_post_code",
        ("Counterparty", Some("Address"), Some("Country")) => "cp_country",
        ("Counterparty", _, _) => "cp_id",
        ("ExportCountry", _, _) => "export_country",
        ("ImportCountry", _, _) => "import_country",
        ("Validity", Some("From"), _) => "valid_from",
        ("Validity", _, _) => "valid_to",
        ("Line", field, attr) => {
            let name = match (field, attr) {
                (Some("Description"), _) => "description",
                (Some("Quantity"), Some("@unit")) => "unit",
                (Some("Quantity"), _) => "quantity",
                (Some("Value"), Some("@currency")) => "currency",
                (Some("Value"), _) => "value",
                _ => "hs_code",
            };
            let row = rows.lines.get(n.saturating_sub(1))?;
            return Some(format!("line_{row}_{name}"));
        }
        ("Attachment", field, _) => {
            let row = rows.attachments.get(n.saturating_sub(1))?;
            let name = match field {
                Some("Type") => "type",
                Some("IssueDate") => "issue_date",
                _ => "reference",
            };
            return Some(format!("attachment_{row}_{name}"));
        }
        _ => return None,
    };
    Some(f.to_owned())
}

/// A form field as the template draws it.
pub struct Field {
    pub name: String,
    pub label: String,
    pub value: String,
    /// `text`, `date`, `select` (or `number`).
    pub kind: &'static str,
    pub options: Vec<Opt>,
    pub error: String,
    pub required: bool,
    pub pattern: &'static str,
    pub auto: &'static str,
    pub hint: String,
}

impl Field {
    fn text(name: impl Into<String>, label: String, value: &str, errors: &FieldErrors) -> Field {
        let name = name.into();
        Field {
            error: errors.of(&name),
            name,
            label,
            value: value.to_owned(),
            kind: "text",
            options: Vec::new(),
            required: false,
            pattern: "",
            auto: "off",
            hint: String::new(),
        }
    }

    fn kind(mut self, kind: &'static str) -> Field {
        self.kind = kind;
        self
    }

    fn required(mut self) -> Field {
        self.required = true;
        self
    }

    fn pattern(mut self, p: &'static str) -> Field {
        self.pattern = p;
        self
    }

    fn hint(mut self, h: String) -> Field {
        self.hint = h;
        self
    }

    fn select(mut self, options: Vec<Opt>) -> Field {
        self.kind = "select";
        self.options = options;
        self
    }
}

pub struct LineFields {
    pub legend: String,
    pub fields: Vec<Field>,
    pub remove: String,
    pub remove_label: String,
}

#[derive(Template)]
#[template(path = "trader/apply.html")]
struct ApplyPage {
    page: Page,
    /// The profile lacks the address the document needs.
    no_address: bool,
    applicant: String,
    errors: FieldErrors,
    /// Violations no field explains.
    unplaced: Vec<String>,
    header: Vec<Field>,
    counterparty: Vec<Field>,
    route: Vec<Field>,
    lines: Vec<LineFields>,
    attachments: Vec<LineFields>,
    can_add_line: bool,
    can_add_attachment: bool,
}

fn options(
    page: &Page,
    codes: &[&str],
    key: &str,
    current: &str,
    empty: Option<String>,
) -> Vec<Opt> {
    let mut out = Vec::new();
    if let Some(e) = empty {
        out.push(Opt::new("", e, current));
    }
    for c in codes {
        let label = page.t(&format!("{key}-{}", c.to_ascii_lowercase()));
        out.push(Opt::new(*c, format!("{label} ({c})"), current));
    }
    if !current.is_empty() && !codes.contains(&current) {
        out.push(Opt::new(current, current.to_owned(), current));
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn show(
    req: &HttpRequest,
    state: &AppState,
    person: &Person,
    profile: &Profile,
    f: &ApplyForm,
    errors: FieldErrors,
    unplaced: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let page = Page::new(req, state, Some(person), "trader-apply-title");
    let no_address = profile.city.as_deref().unwrap_or("").trim().is_empty()
        || profile.country.as_deref().unwrap_or("").trim().is_empty();
    let agencies = {
        let client = state.pool.get().await?;
        state.routing.current(&client).await?
    };
    let mut agency_opts = vec![Opt::new("", page.t("trader-agency-auto"), &f.agency)];
    agency_opts.extend(agencies.spec.agencies.iter().map(|a| {
        Opt::new(
            a.code.clone(),
            format!("{} — {}", a.code, a.name),
            &f.agency,
        )
    }));
    let e = &errors;
    let header = vec![
        Field::text(
            "application_type",
            page.t("trader-application-type"),
            &f.application_type,
            e,
        )
        .select(options(
            &page,
            &APPLICATION_TYPES,
            "trader-apptype",
            &f.application_type,
            Some(page.t("trader-choose")),
        ))
        .required(),
        Field::text("direction", page.t("trader-col-direction"), &f.direction, e)
            .select(vec![
                Opt::new("", page.t("trader-choose"), &f.direction),
                Opt::new("IM", page.t("trader-direction-import"), &f.direction),
                Opt::new("EX", page.t("trader-direction-export"), &f.direction),
                Opt::new("TR", page.t("trader-direction-transit"), &f.direction),
            ])
            .required(),
        Field::text("agency", page.t("trader-col-agency"), &f.agency, e)
            .select(agency_opts)
            .hint(page.t("trader-agency-hint")),
        Field::text(
            "reference",
            page.t("trader-your-reference"),
            &f.reference,
            e,
        )
        .required()
        .pattern("[A-Za-z0-9][A-Za-z0-9\\/._\\-]*")
        .hint(page.t("trader-reference-hint")),
    ];
    let counterparty = vec![
        Field::text("cp_id", page.t("trader-party-id"), &f.cp_id, e)
            .required()
            .pattern("[A-Z0-9\\-]+")
            .hint(page.t("trader-party-id-hint")),
        Field::text("cp_name", page.t("trader-party-name"), &f.cp_name, e).required(),
        Field::text("cp_street", page.t("trader-street"), &f.cp_street, e),
        Field::text("cp_city", page.t("trader-city"), &f.cp_city, e).required(),
        Field::text(
            "cp_post_code",
            page.t("trader-post-code"),
            &f.cp_post_code,
            e,
        ),
        Field::text("cp_country", page.t("trader-country"), &f.cp_country, e)
            .required()
            .pattern("[A-Z]{2}")
            .hint(page.t("trader-country-hint")),
    ];
    let route = vec![
        Field::text(
            "export_country",
            page.t("trader-export-country"),
            &f.export_country,
            e,
        )
        .required()
        .pattern("[A-Z]{2}")
        .hint(page.t("trader-country-hint")),
        Field::text(
            "import_country",
            page.t("trader-import-country"),
            &f.import_country,
            e,
        )
        .required()
        .pattern("[A-Z]{2}")
        .hint(page.t("trader-country-hint")),
        Field::text("valid_from", page.t("trader-valid-from"), &f.valid_from, e)
            .kind("date")
            .required(),
        Field::text("valid_to", page.t("trader-valid-to"), &f.valid_to, e)
            .kind("date")
            .required(),
    ];
    let several = f.lines.len() > 1;
    let lines = f
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let n = (i + 1).to_string();
            LineFields {
                legend: page.ta("trader-line-legend", &[("line", &n)]),
                fields: vec![
                    Field::text(
                        format!("line_{i}_hs_code"),
                        page.t("trader-col-hs"),
                        &l.hs_code,
                        e,
                    )
                    .required()
                    .pattern("[0-9]{6}([0-9]{2})?")
                    .hint(page.t("trader-hs-hint")),
                    Field::text(
                        format!("line_{i}_description"),
                        page.t("trader-col-description"),
                        &l.description,
                        e,
                    )
                    .required(),
                    Field::text(
                        format!("line_{i}_quantity"),
                        page.t("trader-col-quantity"),
                        &l.quantity,
                        e,
                    )
                    .required()
                    .pattern("[0-9]+(\\.[0-9]{1,3})?"),
                    Field::text(
                        format!("line_{i}_unit"),
                        page.t("trader-col-unit"),
                        &l.unit,
                        e,
                    )
                    .select(options(
                        &page,
                        &UNITS,
                        "trader-unit",
                        &l.unit,
                        None,
                    )),
                    Field::text(
                        format!("line_{i}_value"),
                        page.t("trader-col-value"),
                        &l.value,
                        e,
                    )
                    .pattern("[0-9]+(\\.[0-9]{1,2})?")
                    .hint(page.t("trader-optional")),
                    Field::text(
                        format!("line_{i}_currency"),
                        page.t("trader-currency"),
                        &l.currency,
                        e,
                    )
                    .pattern("[A-Z]{3}"),
                ],
                remove: if several {
                    format!("remove_line_{i}")
                } else {
                    String::new()
                },
                remove_label: page.ta("trader-remove-line", &[("line", &n)]),
            }
        })
        .collect();
    let attachments = f
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let n = (i + 1).to_string();
            LineFields {
                legend: page.ta("trader-attachment-legend", &[("n", &n)]),
                fields: vec![
                    Field::text(
                        format!("attachment_{i}_type"),
                        page.t("trader-attachment-type"),
                        &a.kind,
                        e,
                    )
                    .select(options(
                        &page,
                        &ATTACHMENT_TYPES,
                        "trader-doctype",
                        &a.kind,
                        None,
                    )),
                    Field::text(
                        format!("attachment_{i}_reference"),
                        page.t("trader-attachment-reference"),
                        &a.reference,
                        e,
                    ),
                    Field::text(
                        format!("attachment_{i}_issue_date"),
                        page.t("trader-attachment-date"),
                        &a.issue_date,
                        e,
                    )
                    .kind("date"),
                ],
                remove: format!("remove_attachment_{i}"),
                remove_label: page.ta("trader-remove-attachment", &[("n", &n)]),
            }
        })
        .collect();
    let applicant = format!(
        "{} ({}), {}",
        profile.name,
        profile.id,
        [
            profile.street.as_deref(),
            profile.city.as_deref(),
            profile.post_code.as_deref(),
            profile.country.as_deref(),
        ]
        .iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
    );
    render_with(
        status,
        &ApplyPage {
            page,
            no_address,
            applicant,
            errors,
            unplaced,
            header,
            counterparty,
            route,
            lines,
            attachments,
            can_add_line: f.lines.len() < MAX_LINES,
            can_add_attachment: f.attachments.len() < MAX_ATTACHMENTS,
        },
    )
}

async fn profile_of(state: &AppState, person: &Person) -> Result<Profile, PortalError> {
    let client = state.pool.get().await?;
    sessions::profile(&client, person.party_id())
        .await?
        .ok_or(PortalError::NotFound)
}

/// `GET /applications/new`: the form, prefilled with a reference of the trader's own.
#[tracing::instrument(name = "portal.apply_form", skip_all, fields(party))]
pub async fn form(
    person: Person,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let profile = profile_of(&state, &person).await?;
    let f = ApplyForm::blank(state.today());
    show(
        &req,
        &state,
        &person,
        &profile,
        &f,
        FieldErrors::new(),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

/// `POST /applications/new` (urlencoded): adds or removes a line or an attachment, or writes
/// the document and files it (`licensing::submit`).
#[tracing::instrument(name = "portal.apply", skip_all, fields(party, reference))]
pub async fn post(
    person: Person,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    if body.len() > FORM_LIMIT {
        return Err(PortalError::BadRequest("form too large".into()));
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|e| PortalError::BadRequest(e.to_string()))?;
    let (mut f, csrf, action) = ApplyForm::parse(pairs);
    person.check_csrf(&csrf)?;
    let profile = profile_of(&state, &person).await?;
    let redraw = |f: ApplyForm| {
        let (req, state, person, profile) = (&req, &state, &person, &profile);
        async move {
            show(
                req,
                state,
                person,
                profile,
                &f,
                FieldErrors::new(),
                Vec::new(),
                StatusCode::OK,
            )
            .await
        }
    };
    match action.as_str() {
        "add_line" => {
            if f.lines.len() < MAX_LINES {
                let last = f.lines.last().cloned().unwrap_or_default();
                f.lines.push(LineForm {
                    unit: last.unit,
                    currency: last.currency,
                    ..LineForm::default()
                });
            }
            return redraw(f).await;
        }
        "add_attachment" => {
            if f.attachments.len() < MAX_ATTACHMENTS {
                f.attachments.push(AttachmentForm {
                    kind: "OTH".into(),
                    ..AttachmentForm::default()
                });
            }
            return redraw(f).await;
        }
        a if a.starts_with("remove_line_") => {
            if let Ok(i) = a["remove_line_".len()..].parse::<usize>() {
                if i < f.lines.len() && f.lines.len() > 1 {
                    f.lines.remove(i);
                }
            }
            return redraw(f).await;
        }
        a if a.starts_with("remove_attachment_") => {
            if let Ok(i) = a["remove_attachment_".len()..].parse::<usize>() {
                if i < f.attachments.len() {
                    f.attachments.remove(i);
                }
            }
            return redraw(f).await;
        }
        _ => {}
    }
    let page_lang = Page::new(&req, &state, Some(&person), "trader-apply-title");
    let no_address = profile.city.as_deref().unwrap_or("").trim().is_empty()
        || profile.country.as_deref().unwrap_or("").trim().is_empty();
    if no_address {
        return show(
            &req,
            &state,
            &person,
            &profile,
            &f,
            FieldErrors::new(),
            vec![page_lang.t("trader-profile-needed")],
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let (xml, rows) = f.to_xml(&profile, state.today());
    let violations: Vec<Violation> =
        match licensing::submit(&licensing_context(&state), person.party_id(), &xml).await {
            Ok(receipt) => {
                tracing::Span::current().record("reference", receipt.reference.as_str());
                return Ok(see_other(&format!("/applications/{}", receipt.id)));
            }
            Err(WorkflowError::Invalid(v)) => v,
            Err(WorkflowError::Xml(x)) => vec![Violation {
                line: 0,
                column: 0,
                path: "/".into(),
                code: x.code(),
                message: x.to_string(),
            }],
            Err(WorkflowError::Forbidden { code, detail }) => vec![Violation {
                line: 0,
                column: 0,
                path: "/".into(),
                code,
                message: detail,
            }],
            Err(e) => return Err(e.into()),
        };
    let mut errors = FieldErrors::new();
    let mut unplaced = Vec::new();
    for v in &violations {
        let message = format!("{}: {}", v.code, v.message);
        match field_of(&v.path, &rows) {
            Some(field) => errors.add(field, message),
            None => unplaced.push(message),
        }
    }
    show(
        &req,
        &state,
        &person,
        &profile,
        &f,
        errors,
        unplaced,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_fields() {
        let rows = Rows {
            lines: vec![0, 2],
            attachments: vec![0, 2],
        };
        assert_eq!(
            field_of("/LicenceApplication/Line[2]/HSCode", &rows).as_deref(),
            Some("line_2_hs_code")
        );
        assert_eq!(
            field_of("/LicenceApplication/Line[1]/Quantity/@unit", &rows).as_deref(),
            Some("line_0_unit")
        );
        assert_eq!(
            field_of("/LicenceApplication/Attachment[2]/Reference", &rows).as_deref(),
            Some("attachment_2_reference")
        );
        assert_eq!(
            field_of("/LicenceApplication/Counterparty/Address/Country", &rows).as_deref(),
            Some("cp_country")
        );
        assert_eq!(field_of("/LicenceApplication/Applicant/Name", &rows), None);
        assert_eq!(field_of("/", &rows), None);
    }

    #[test]
    fn empty_rows_are_not_written_and_the_rows_map_back() {
        let mut f = ApplyForm::blank(chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        f.lines.push(LineForm::default());
        f.lines.push(LineForm {
            hs_code: "100630".into(),
            description: "rice & <co>".into(),
            quantity: "1".into(),
            unit: "TNE".into(),
            ..LineForm::default()
        });
        let profile = Profile {
            id: "0301234567".into(),
            name: "A \"quoted\" name".into(),
            city: Some("Hà Nội".into()),
            country: Some("VN".into()),
            ..Profile::default()
        };
        let (xml, rows) = f.to_xml(
            &profile,
            chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        );
        let text = String::from_utf8(xml).unwrap();
        assert_eq!(rows.lines, vec![2]);
        assert!(rows.attachments.is_empty());
        assert_eq!(text.matches("<Line>").count(), 1);
        assert!(text.contains("<Number>1</Number>"));
        assert!(text.contains("rice &amp; &lt;co&gt;"));
        assert!(!text.contains("<Attachment>"));
        assert!(!text.contains("<Street>"));
        assert_eq!(
            field_of("/LicenceApplication/Line/HSCode", &rows).as_deref(),
            Some("line_2_hs_code")
        );
    }

    #[test]
    fn indexed_fields_are_read_back_in_order() {
        let pairs = vec![
            ("line_1_hs_code".to_owned(), "100630".to_owned()),
            ("line_0_hs_code".to_owned(), "851712".to_owned()),
            ("csrf".to_owned(), "t".to_owned()),
            ("action".to_owned(), "submit".to_owned()),
        ];
        let (f, csrf, action) = ApplyForm::parse(pairs);
        assert_eq!((csrf.as_str(), action.as_str()), ("t", "submit"));
        assert_eq!(f.lines.len(), 2);
        assert_eq!(f.lines[0].hs_code, "851712");
    }
}
