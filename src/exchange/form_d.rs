//! Certificates of origin for partner windows: an ATIGA Form D as issued, sent as is to ASEAN
//! partners (profile `asw`), or mapped to Korea's `KoreaCertificateOfOrigin` (profile `kr`).

use quick_xml::escape::escape;

use super::partners::{Partners, Profile};
use super::ExchangeError;
use crate::xml::tree::ROOT;
use crate::xml::{Limits, Tree};

/// A certificate ready for `outbox::enqueue`.
pub struct Prepared {
    pub receiver: String,
    pub document_type: &'static str,
    pub reference: String,
    pub payload: Vec<u8>,
}

fn refused(code: &'static str, detail: impl Into<String>) -> ExchangeError {
    ExchangeError::Refused {
        code,
        detail: detail.into(),
    }
}

/// Shapes a schema-valid Form D for the partner of its import country.
pub fn prepare(form_d: &[u8], partners: &Partners) -> Result<Prepared, ExchangeError> {
    let tree = Tree::parse(form_d, &Limits::default())?;
    let text = |chain: &str| tree.at(ROOT, chain).map(|n| tree.text(n).to_owned());
    let reference = text("ReferenceNumber")
        .ok_or_else(|| refused("FORM_D_UNREADABLE", "no ReferenceNumber"))?;
    let country =
        text("ImportCountry").ok_or_else(|| refused("FORM_D_UNREADABLE", "no ImportCountry"))?;
    let partner = partners.get(&country).ok_or_else(|| {
        refused(
            "NO_PARTNER",
            format!("{country} is not a partner window of this one"),
        )
    })?;
    match partner.profile {
        Profile::Asw => {
            if !partner.exchanges("FORM_D") {
                return Err(refused(
                    "NOT_EXCHANGED",
                    format!("Form D is not exchanged with {country}"),
                ));
            }
            Ok(Prepared {
                receiver: country,
                document_type: "FORM_D",
                reference,
                payload: form_d.to_vec(),
            })
        }
        Profile::Kr => {
            if !partner.exchanges("CERTIFICATE_OF_ORIGIN_KR") {
                return Err(refused(
                    "NOT_EXCHANGED",
                    format!("certificates of origin are not exchanged with {country}"),
                ));
            }
            let payload = to_korea(&tree)?;
            Ok(Prepared {
                receiver: country,
                document_type: "CERTIFICATE_OF_ORIGIN_KR",
                reference: korea_certificate_no(&reference),
                payload,
            })
        }
    }
}

/// Korea's certificate numbers allow only `[A-Z0-9-]`.
pub fn korea_certificate_no(reference: &str) -> String {
    reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn origin_criterion(form_d: &str) -> Option<String> {
    match form_d {
        "WO" | "PE" | "CTH" | "CTSH" => Some(form_d.to_owned()),
        _ => {
            // "RVC 40%" → "RVC 40%"; Korea's format has whole percentages only, so a
            // fractional RVC is rounded down (the threshold claimed is then never overstated).
            let pct = form_d.strip_prefix("RVC ")?.strip_suffix('%')?;
            let whole = pct.split('.').next()?.parse::<u32>().ok()?;
            (whole <= 99).then(|| format!("RVC {whole}%"))
        }
    }
}

/// Maps a Form D onto `urn:nsw:partner:kr:coo:1`. Refuses what Korea's format cannot say
/// (criteria CTC/PSR, partial cumulation) rather than sending something else.
pub fn to_korea(tree: &Tree<'_>) -> Result<Vec<u8>, ExchangeError> {
    let get = |id: usize, chain: &str| -> Result<String, ExchangeError> {
        tree.at(id, chain)
            .map(|n| escape(tree.text(n)).into_owned())
            .ok_or_else(|| refused("FORM_D_UNREADABLE", format!("no {chain}")))
    };
    let opt = |id: usize, chain: &str| {
        tree.at(id, chain)
            .map(|n| escape(tree.text(n)).into_owned())
    };
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<KoreaCertificateOfOrigin xmlns=\"urn:nsw:partner:kr:coo:1\">\n");
    let reference = tree
        .at(ROOT, "ReferenceNumber")
        .map(|n| tree.text(n))
        .unwrap_or("");
    o.push_str(&format!(
        "  <CertificateNo>{}</CertificateNo>\n",
        korea_certificate_no(reference)
    ));
    o.push_str(&format!(
        "  <IssuedDate>{}</IssuedDate>\n  <FtaCode>AKFTA</FtaCode>\n",
        get(ROOT, "IssueDate")?
    ));
    let office: String = get(ROOT, "IssuingAuthority/Code")?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect();
    o.push_str(&format!(
        "  <IssuingOffice>\n    <OfficeCode>{office}</OfficeCode>\n    <OfficeName>{}</OfficeName>\n  </IssuingOffice>\n",
        get(ROOT, "IssuingAuthority/Name")?
    ));
    for (ours, theirs) in [("Exporter", "ExporterInfo"), ("Consignee", "ImporterInfo")] {
        let p = tree
            .child(ROOT, ours)
            .ok_or_else(|| refused("FORM_D_UNREADABLE", format!("no {ours}")))?;
        let address: Vec<String> = ["Address/Street", "Address/City", "Address/PostCode"]
            .iter()
            .filter_map(|c| opt(p, c))
            .collect();
        o.push_str(&format!(
            "  <{theirs}>\n    <BusinessNo>{}</BusinessNo>\n    <CompanyName>{}</CompanyName>\n    <Address>{}</Address>\n    <CountryCode>{}</CountryCode>\n  </{theirs}>\n",
            get(p, "ID")?,
            get(p, "Name")?,
            address.join(", "),
            get(p, "Address/Country")?
        ));
    }
    // Form D does not state the transport mode; its box 3 names a vessel and two ports, the
    // usual sea shipment, which is what we declare.
    o.push_str(&format!(
        "  <ShipmentInfo>\n    <DepartureDate>{}</DepartureDate>\n    <TransportMeans>SEA</TransportMeans>\n    <VesselName>{}</VesselName>\n    <LoadingPortCode>{}</LoadingPortCode>\n    <DischargePortCode>{}</DischargePortCode>\n  </ShipmentInfo>\n  <GoodsList>\n",
        get(ROOT, "Transport/DepartureDate")?,
        get(ROOT, "Transport/MeansName")?,
        get(ROOT, "Transport/LoadingPort")?,
        get(ROOT, "Transport/DischargePort")?
    ));
    for item in tree.children(ROOT, "Item") {
        let criterion_raw = tree
            .at(item, "OriginCriterion")
            .map(|n| tree.text(n))
            .unwrap_or("");
        let criterion = origin_criterion(criterion_raw).ok_or_else(|| {
            refused(
                "PROFILE_UNMAPPABLE",
                format!(
                    "origin criterion '{criterion_raw}' of {} has no equivalent in Korea's format",
                    tree.path(item)
                ),
            )
        })?;
        let hs: String = get(item, "HSCode")?.chars().take(6).collect();
        o.push_str(&format!(
            "    <Goods lineNo=\"{}\">\n      <HsCode>{hs}</HsCode>\n      <GoodsName>{}</GoodsName>\n      <OriginCriteria>{criterion}</OriginCriteria>\n",
            get(item, "Number")?,
            get(item, "Description")?
        ));
        let gross = opt(item, "GrossMass");
        match tree.child(item, "Quantity") {
            Some(q) => o.push_str(&format!(
                "      <Quantity>{}</Quantity>\n      <QuantityUnit>{}</QuantityUnit>\n",
                escape(tree.text(q)),
                escape(tree.attr(q, "unit").unwrap_or(""))
            )),
            None => o.push_str(&format!(
                "      <Quantity>{}</Quantity>\n      <QuantityUnit>KGM</QuantityUnit>\n",
                gross.clone().unwrap_or_default()
            )),
        }
        if let Some(g) = gross.filter(|g| g.parse::<f64>().is_ok_and(|v| v > 0.0)) {
            o.push_str(&format!(
                "      <GrossWeight unitCode=\"KGM\">{g}</GrossWeight>\n"
            ));
        }
        if let Some(p) = opt(item, "PackageCount") {
            o.push_str(&format!("      <PackageQty>{p}</PackageQty>\n"));
        }
        let fob = tree
            .child(item, "FOBValue")
            .ok_or_else(|| refused("FORM_D_UNREADABLE", "an item has no FOBValue"))?;
        o.push_str(&format!(
            "      <Amount currencyCode=\"{}\">{}</Amount>\n      <InvoiceNo>{}</InvoiceNo>\n      <InvoiceDate>{}</InvoiceDate>\n    </Goods>\n",
            escape(tree.attr(fob, "currency").unwrap_or("")),
            escape(tree.text(fob)),
            get(item, "InvoiceNumber")?,
            get(item, "InvoiceDate")?
        ));
    }
    o.push_str("  </GoodsList>\n");
    let flag = |name: &str| {
        tree.at(ROOT, &format!("Flags/{name}"))
            .map(|n| tree.text(n))
            == Some("true")
    };
    if flag("PartialCumulation") {
        return Err(refused(
            "PROFILE_UNMAPPABLE",
            "partial cumulation has no equivalent in Korea's format",
        ));
    }
    for (ours, theirs) in [
        ("ThirdCountryInvoicing", "THIRD_PARTY_INVOICING"),
        ("Exhibition", "EXHIBITION"),
        ("BackToBack", "BACK_TO_BACK"),
        ("IssuedRetroactively", "ISSUED_RETROSPECTIVELY"),
        ("Accumulation", "ACCUMULATION"),
        ("DeMinimis", "DE_MINIMIS"),
    ] {
        if flag(ours) {
            o.push_str(&format!("  <SpecialCase>{theirs}</SpecialCase>\n"));
        }
    }
    if let Some(r) = tree.at(ROOT, "Remarks").map(|n| tree.text(n)) {
        let clipped: String = r.chars().take(500).collect();
        o.push_str(&format!("  <Remark>{}</Remark>\n", escape(&clipped)));
    }
    o.push_str("</KoreaCertificateOfOrigin>\n");
    Ok(o.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{Validator, Verdict};
    use crate::xml::DocKind;

    #[test]
    fn the_sample_form_d_maps_to_a_valid_korean_certificate() {
        let src = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/valid/certificate-of-origin/vn-sg-form-d.xml"
        ))
        .unwrap();
        let tree = Tree::parse(&src, &Limits::default()).unwrap();
        let kr = to_korea(&tree).unwrap();
        let v = Validator::new(Limits::default(), "VN");
        match v.validate(&kr, Some(DocKind::KrCoo)) {
            Verdict::Valid(_) => {}
            Verdict::Invalid { violations, .. } => {
                panic!("{violations:?}\n{}", String::from_utf8_lossy(&kr))
            }
            Verdict::Unusable(e) => panic!("{e}"),
        }
        let s = String::from_utf8(kr).unwrap();
        assert!(s.contains("<CertificateNo>VN-SG-26-02-0045218</CertificateNo>"));
        assert!(s.contains("<OriginCriteria>RVC 42%</OriginCriteria>"));
        assert!(s.contains("<QuantityUnit>KGM</QuantityUnit>"));
    }

    #[test]
    fn criteria_korea_cannot_express_are_refused() {
        assert_eq!(origin_criterion("RVC 40.5%").as_deref(), Some("RVC 40%"));
        assert_eq!(origin_criterion("CTSH").as_deref(), Some("CTSH"));
        assert_eq!(origin_criterion("CTC"), None);
        assert_eq!(origin_criterion("PSR"), None);
        assert_eq!(origin_criterion("RVC 100%"), None);
    }
}
