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

/// Whether the partner of `country` takes certificates of origin from this window at all.
pub fn partner_takes(partners: &Partners, country: &str) -> bool {
    partners.get(country).is_some_and(|p| match p.profile {
        Profile::Asw => p.exchanges("FORM_D"),
        Profile::Kr => p.exchanges("CERTIFICATE_OF_ORIGIN_KR"),
    })
}

/// Writes a prepared certificate to the outbox in the caller's transaction, so it leaves if and
/// only if whatever caused it commits.
pub async fn enqueue<C: deadpool_postgres::GenericClient>(
    tx: &C,
    settings: &crate::config::Settings,
    identity: &super::keys::Identity,
    prepared: Prepared,
    cause: super::outbox::Cause,
    actor: &str,
) -> Result<super::outbox::Enqueued, ExchangeError> {
    super::outbox::enqueue(
        tx,
        settings,
        identity,
        super::outbox::NewMessage {
            cause,
            receiver: prepared.receiver,
            document_type: prepared.document_type.into(),
            function: "submit".into(),
            reference: prepared.reference,
            previous_reference: None,
            conversation_id: None,
            payload: prepared.payload,
            actor: actor.to_owned(),
        },
    )
    .await
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

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Maps Korea's `KoreaCertificateOfOrigin` back onto our certificate of origin
/// (`urn:nsw:certificate-of-origin:1`) for the customs inbox. Korea's format writes an
/// address on one line: it goes to `Street` (clipped to 140), and the part before the last
/// comma (usually the city, the last being the country) becomes `City`. What our schema needs
/// and Korea's certificate does not carry (business number, package count) is refused, not
/// invented.
pub fn from_korea(tree: &Tree<'_>) -> Result<Vec<u8>, ExchangeError> {
    let get = |id: usize, chain: &str| -> Result<String, ExchangeError> {
        tree.at(id, chain)
            .map(|n| tree.text(n).to_owned())
            .ok_or_else(|| refused("PROFILE_UNMAPPABLE", format!("no {chain}")))
    };
    let e = |s: &str| escape(s).into_owned();
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CertificateOfOrigin xmlns=\"urn:nsw:certificate-of-origin:1\">\n");
    o.push_str(&format!(
        "  <ReferenceNumber>{}</ReferenceNumber>\n  <IssueDate>{}</IssueDate>\n",
        e(&get(ROOT, "CertificateNo")?),
        e(&get(ROOT, "IssuedDate")?)
    ));
    let exporter_country = get(ROOT, "ExporterInfo/CountryCode")?;
    o.push_str(&format!(
        "  <IssuingAuthority>\n    <Code>KR-{}</Code>\n    <Name>{}</Name>\n    <Country>{}</Country>\n  </IssuingAuthority>\n",
        e(&get(ROOT, "IssuingOffice/OfficeCode")?),
        e(&clip(&get(ROOT, "IssuingOffice/OfficeName")?, 140)),
        e(&exporter_country)
    ));
    for (theirs, ours) in [("ExporterInfo", "Exporter"), ("ImporterInfo", "Consignee")] {
        let p = tree
            .child(ROOT, theirs)
            .ok_or_else(|| refused("PROFILE_UNMAPPABLE", format!("no {theirs}")))?;
        let id = tree
            .at(p, "BusinessNo")
            .map(|n| tree.text(n).to_owned())
            .ok_or_else(|| {
                refused(
                    "PROFILE_UNMAPPABLE",
                    format!("{theirs} has no BusinessNo, which a Form D party needs"),
                )
            })?;
        let address = get(p, "Address")?;
        let parts: Vec<&str> = address
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let city = if parts.len() >= 2 {
            parts[parts.len() - 2]
        } else {
            address.as_str()
        };
        o.push_str(&format!(
            "  <{ours}>\n    <ID>{}</ID>\n    <Name>{}</Name>\n    <Address>\n      <Street>{}</Street>\n      <City>{}</City>\n      <Country>{}</Country>\n    </Address>\n  </{ours}>\n",
            e(&id),
            e(&clip(&get(p, "CompanyName")?, 140)),
            e(&clip(&address, 140)),
            e(&clip(city, 70)),
            e(&get(p, "CountryCode")?)
        ));
    }
    o.push_str(&format!(
        "  <ExportCountry>{}</ExportCountry>\n  <ImportCountry>{}</ImportCountry>\n",
        e(&exporter_country),
        e(&get(ROOT, "ImporterInfo/CountryCode")?)
    ));
    let means = tree
        .at(ROOT, "ShipmentInfo/VesselName")
        .or_else(|| tree.at(ROOT, "ShipmentInfo/TransportMeans"))
        .map(|n| tree.text(n).to_owned())
        .unwrap_or_default();
    o.push_str(&format!(
        "  <Transport>\n    <DepartureDate>{}</DepartureDate>\n    <MeansName>{}</MeansName>\n    <LoadingPort>{}</LoadingPort>\n    <DischargePort>{}</DischargePort>\n  </Transport>\n",
        e(&get(ROOT, "ShipmentInfo/DepartureDate")?),
        e(&clip(&means, 70)),
        e(&get(ROOT, "ShipmentInfo/LoadingPortCode")?),
        e(&get(ROOT, "ShipmentInfo/DischargePortCode")?)
    ));
    let list = tree
        .child(ROOT, "GoodsList")
        .ok_or_else(|| refused("PROFILE_UNMAPPABLE", "no GoodsList"))?;
    for g in tree.children(list, "Goods") {
        let line = tree.attr(g, "lineNo").unwrap_or("");
        let criterion = get(g, "OriginCriteria")?;
        let ours = match criterion.as_str() {
            "WO" | "PE" | "CTH" | "CTSH" => criterion.clone(),
            c if c.starts_with("RVC ") => c.to_owned(),
            other => {
                return Err(refused(
                    "PROFILE_UNMAPPABLE",
                    format!(
                        "origin criterion '{other}' of goods line {line} has no Form D equivalent"
                    ),
                ))
            }
        };
        let packages = tree
            .at(g, "PackageQty")
            .map(|n| tree.text(n).to_owned())
            .ok_or_else(|| {
                refused(
                    "PROFILE_UNMAPPABLE",
                    format!("goods line {line} has no PackageQty, which a Form D item needs"),
                )
            })?;
        let amount = tree
            .child(g, "Amount")
            .ok_or_else(|| refused("PROFILE_UNMAPPABLE", "goods without Amount"))?;
        o.push_str(&format!(
            "  <Item>\n    <Number>{}</Number>\n    <PackageCount kind=\"PK\">{}</PackageCount>\n    <Description>{}</Description>\n    <HSCode>{}</HSCode>\n    <OriginCriterion>{}</OriginCriterion>\n    <Quantity unit=\"{}\">{}</Quantity>\n    <FOBValue currency=\"{}\">{}</FOBValue>\n    <InvoiceNumber>{}</InvoiceNumber>\n    <InvoiceDate>{}</InvoiceDate>\n  </Item>\n",
            e(line),
            e(&packages),
            e(&clip(&get(g, "GoodsName")?, 512)),
            e(&get(g, "HsCode")?.chars().take(6).collect::<String>()),
            e(&ours),
            e(&get(g, "QuantityUnit")?),
            e(&get(g, "Quantity")?),
            e(tree.attr(amount, "currencyCode").unwrap_or("")),
            e(tree.text(amount)),
            e(&get(g, "InvoiceNo")?),
            e(&get(g, "InvoiceDate")?)
        ));
    }
    let cases: Vec<&str> = tree
        .children(ROOT, "SpecialCase")
        .map(|n| tree.text(n))
        .collect();
    let has = |c: &str| if cases.contains(&c) { "true" } else { "false" };
    o.push_str(&format!(
        "  <Flags>\n    <ThirdCountryInvoicing>{}</ThirdCountryInvoicing>\n    <Exhibition>{}</Exhibition>\n    <BackToBack>{}</BackToBack>\n    <IssuedRetroactively>{}</IssuedRetroactively>\n    <Accumulation>{}</Accumulation>\n    <PartialCumulation>false</PartialCumulation>\n    <DeMinimis>{}</DeMinimis>\n  </Flags>\n",
        has("THIRD_PARTY_INVOICING"), has("EXHIBITION"), has("BACK_TO_BACK"),
        has("ISSUED_RETROSPECTIVELY"), has("ACCUMULATION"), has("DE_MINIMIS")
    ));
    if let Some(r) = tree.at(ROOT, "Remark") {
        o.push_str(&format!(
            "  <Remarks>{}</Remarks>\n",
            e(&clip(tree.text(r), 512))
        ));
    }
    o.push_str("</CertificateOfOrigin>\n");
    Ok(o.into_bytes())
}

#[cfg(test)]
mod back {
    use super::*;
    use crate::validation::{Validator, Verdict};
    use crate::xml::DocKind;

    #[test]
    fn a_korean_certificate_maps_back_to_a_valid_certificate_of_origin() {
        let src = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/valid/kr-coo/akfta-kr-vn-steel.xml"
        ))
        .unwrap();
        let tree = Tree::parse(&src, &Limits::default()).unwrap();
        let ours = from_korea(&tree).unwrap();
        let v = Validator::new(Limits::default(), "VN");
        match v.validate(&ours, Some(DocKind::CertificateOfOrigin)) {
            Verdict::Valid(_) => {}
            Verdict::Invalid { violations, .. } => {
                panic!("{violations:?}\n{}", String::from_utf8_lossy(&ours))
            }
            Verdict::Unusable(e) => panic!("{e}"),
        }
        let s = String::from_utf8(ours).unwrap();
        assert!(s.contains("<ReferenceNumber>26-AK-BS-0071523</ReferenceNumber>"));
        assert!(s.contains("<Code>KR-KCSBUSAN</Code>"));
        assert!(s.contains("<OriginCriterion>RVC 45%</OriginCriterion>"));
        assert!(s.contains("<City>Busan 48821</City>"));
    }

    #[test]
    fn a_round_trip_keeps_what_both_formats_say() {
        let src = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/valid/certificate-of-origin/vn-sg-form-d.xml"
        ))
        .unwrap();
        let kr = to_korea(&Tree::parse(&src, &Limits::default()).unwrap()).unwrap();
        let back = from_korea(&Tree::parse(&kr, &Limits::default()).unwrap()).unwrap();
        let s = String::from_utf8(back).unwrap();
        for kept in [
            "<ReferenceNumber>VN-SG-26-02-0045218</ReferenceNumber>",
            "<HSCode>100630</HSCode>",
            "<OriginCriterion>RVC 42%</OriginCriterion>",
            "<FOBValue currency=\"USD\">28250.00</FOBValue>",
            "<InvoiceNumber>SGF-INV-2605-118</InvoiceNumber>",
        ] {
            assert!(s.contains(kept), "{kept} lost:\n{s}");
        }
    }
}
