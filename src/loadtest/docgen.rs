//! Realistic declarations of any size for load generation: imports into Viet Nam of everyday
//! goods that no agency licenses, so the load measures intake itself, not licence balances.
//! Totals are computed exactly (integer cents and grams), so every document is valid.

use std::fmt::Write;

struct Goods {
    hs: &'static str,
    description: &'static str,
    unit: &'static str,
    quantity: u64,
    net_g: u64,
    gross_g: u64,
    value_cents: u64,
}

const GOODS: &[Goods] = &[
    Goods {
        hs: "940360",
        description: "Wooden furniture for offices, flat-packed desks",
        unit: "H87",
        quantity: 40,
        net_g: 1_200_000,
        gross_g: 1_350_000,
        value_cents: 480_000,
    },
    Goods {
        hs: "392690",
        description: "Plastic storage boxes with lids, assorted sizes",
        unit: "H87",
        quantity: 1200,
        net_g: 840_000,
        gross_g: 910_500,
        value_cents: 216_000,
    },
    Goods {
        hs: "482010",
        description: "Paper notebooks, A5, ruled, 96 sheets",
        unit: "H87",
        quantity: 5000,
        net_g: 1_500_000,
        gross_g: 1_620_000,
        value_cents: 175_000,
    },
    Goods {
        hs: "732393",
        description: "Stainless steel kitchen pots and pans, sets",
        unit: "SET",
        quantity: 300,
        net_g: 960_000,
        gross_g: 1_050_250,
        value_cents: 540_000,
    },
    Goods {
        hs: "691110",
        description: "Porcelain tableware, dinner plates and bowls",
        unit: "H87",
        quantity: 2400,
        net_g: 1_680_000,
        gross_g: 1_900_000,
        value_cents: 312_000,
    },
    Goods {
        hs: "420292",
        description: "Travel bags with outer surface of textile",
        unit: "H87",
        quantity: 600,
        net_g: 540_000,
        gross_g: 600_000,
        value_cents: 720_000,
    },
];

/// A valid import declaration with `items` lines; `seq` makes the declarant's reference unique.
pub fn declaration(items: usize, seq: u64) -> Vec<u8> {
    build(items, seq, 0)
}

/// A valid declaration of about `bytes` bytes: `items` lines, each carrying as many supporting
/// document references (at most 99, as the schema allows) as it takes.
pub fn large_declaration(items: usize, bytes: usize, seq: u64) -> Vec<u8> {
    let base = declaration(items, seq).len();
    let per_doc = DOC_REF_BYTES;
    let extra = bytes.saturating_sub(base) / items.max(1) / per_doc;
    build(items, seq, extra.min(99))
}

/// Size of one extra `<Document>` block written by `build`.
const DOC_REF_BYTES: usize = 118;

fn build(items: usize, seq: u64, extra_docs: usize) -> Vec<u8> {
    let items = items.clamp(1, 999);
    let mut body = String::with_capacity(1200 + items * 700);
    let (mut total_value, mut total_gross) = (0u64, 0u64);
    for i in 0..items {
        let g = &GOODS[i % GOODS.len()];
        total_value += g.value_cents;
        total_gross += g.gross_g;
        let _ = write!(
            body,
            r#"  <Item>
    <Number>{n}</Number>
    <HSCode>{hs}</HSCode>
    <Description>{d}</Description>
    <Origin>CN</Origin>
    <Quantity unit="{u}">{q}</Quantity>
    <NetMass>{net}</NetMass>
    <GrossMass>{gross}</GrossMass>
    <CustomsValue currency="USD">{v}</CustomsValue>
    <Document>
      <Type>OTH</Type>
      <Reference>INV-LT-{seq}</Reference>
    </Document>
"#,
            n = i + 1,
            hs = g.hs,
            d = g.description,
            u = g.unit,
            q = g.quantity,
            net = kg(g.net_g),
            gross = kg(g.gross_g),
            v = usd(g.value_cents),
        );
        for d in 0..extra_docs {
            let _ = write!(
                body,
                "    <Document>\n      <Type>OTH</Type>\n      <Reference>PACKING-LIST-{seq:08}-{i:03}-{d:02}</Reference>\n    </Document>\n"
            );
        }
        body.push_str("  </Item>\n");
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Declaration xmlns="urn:nsw:declaration:1">
  <Header>
    <Reference>LT-{seq}</Reference>
    <Type>IM</Type>
    <ProcedureCode>A11</ProcedureCode>
    <IssueDate>2026-10-02</IssueDate>
    <CustomsOffice>02CI</CustomsOffice>
  </Header>
  <Declarant>
    <ID>0311112222</ID>
    <Name>Hoa Binh Household Goods Trading Co., Ltd</Name>
    <Address>
      <Street>125 Nguyen Van Linh, Tan Phong Ward, District 7</Street>
      <City>Ho Chi Minh City</City>
      <PostCode>700000</PostCode>
      <Country>VN</Country>
    </Address>
  </Declarant>
  <Exporter>
    <ID>CN-91440300-7788</ID>
    <Name>Shenzhen Everbright Home Products Co., Ltd</Name>
    <Address>
      <City>Shenzhen</City>
      <Country>CN</Country>
    </Address>
  </Exporter>
  <Importer>
    <ID>0311112222</ID>
    <Name>Hoa Binh Household Goods Trading Co., Ltd</Name>
    <Address>
      <City>Ho Chi Minh City</City>
      <Country>VN</Country>
    </Address>
  </Importer>
  <ExportCountry>CN</ExportCountry>
  <DestinationCountry>VN</DestinationCountry>
  <Transport>
    <Mode>1</Mode>
    <MeansName>WAN HAI 302</MeansName>
    <LoadingPort>CNSZX</LoadingPort>
    <DischargePort>VNSGN</DischargePort>
    <DepartureDate>2026-09-24</DepartureDate>
    <ArrivalDate>2026-09-30</ArrivalDate>
  </Transport>
  <Invoice>
    <Number>EB-2026-{seq}</Number>
    <Date>2026-09-20</Date>
    <Currency>USD</Currency>
    <Incoterm>CIF</Incoterm>
  </Invoice>
  <Totals>
    <ItemCount>{items}</ItemCount>
    <GrossMass>{tg}</GrossMass>
    <CustomsValue currency="USD">{tv}</CustomsValue>
  </Totals>
{body}</Declaration>
"#,
        tg = kg(total_gross),
        tv = usd(total_value),
    )
    .into_bytes()
}

/// The declarant of generated documents.
pub const DECLARANT: &str = "0311112222";

fn kg(grams: u64) -> String {
    format!("{}.{:03}", grams / 1000, grams % 1000)
}

fn usd(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{Validator, Verdict};
    use crate::xml::Limits;

    #[test]
    fn generated_declarations_are_valid_at_every_size() {
        let v = Validator::new(Limits::default(), "VN");
        let large = large_declaration(999, 10 * 1024 * 1024, 3);
        assert!(large.len() > 9 * 1024 * 1024, "{}", large.len());
        for doc in [1, 2, 7, 10, 50, 999]
            .into_iter()
            .map(|n| declaration(n, n as u64))
            .chain([large])
        {
            let n = doc.len();
            match v.validate(&doc, None) {
                Verdict::Valid(_) => {}
                Verdict::Invalid { violations, .. } => panic!("{n} items: {violations:?}"),
                Verdict::Unusable(e) => panic!("{n} items: {e}"),
            }
        }
    }
}
