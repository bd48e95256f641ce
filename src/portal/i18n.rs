//! The portal's languages: Vietnamese and English, every string from the Fluent catalogues
//! under `locales/<lang>/*.ftl` (compiled into the binary), and dates, numbers and money
//! written as each language writes them.
//!
//! The language is, in order: the `nsw_lang` cookie the language switch sets, the browser's
//! `Accept-Language`, then `portal.default_language` (Vietnamese for a VN window).

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::HttpRequest;
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader};

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "vi",
        // Keep numbers as the catalogue writes them: no Unicode isolation marks around
        // arguments, which screen readers and copy-paste would otherwise carry along.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// Name of the cookie the language switch sets.
pub const COOKIE: &str = "nsw_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

fn ids() -> &'static [LanguageIdentifier; 2] {
    static IDS: OnceLock<[LanguageIdentifier; 2]> = OnceLock::new();
    IDS.get_or_init(|| {
        [
            "vi".parse().expect("static language id"),
            "en".parse().expect("static language id"),
        ]
    })
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Vi, Lang::En];

    /// The BCP 47 tag (`vi`, `en`), as `<html lang>` and the cookie carry it.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let primary = s.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (for the switch).
    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }

    /// The language's own name for itself.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::Vi => "Tiếng Việt",
            Lang::En => "English",
        }
    }

    fn id(self) -> &'static LanguageIdentifier {
        &ids()[match self {
            Lang::Vi => 0,
            Lang::En => 1,
        }]
    }

    /// The message `key`; a missing key shows as the key itself (a test keeps both
    /// catalogues complete).
    pub fn t(self, key: &str) -> String {
        LOCALES
            .try_lookup(self.id(), key)
            .unwrap_or_else(|| key.to_owned())
    }

    /// The message `key` with named arguments (`{ $name }` in the catalogue).
    pub fn t_args(self, key: &str, args: &[(&str, String)]) -> String {
        let map: HashMap<std::borrow::Cow<'static, str>, FluentValue<'_>> = args
            .iter()
            .map(|(k, v)| {
                (
                    std::borrow::Cow::Owned((*k).to_owned()),
                    FluentValue::from(v.clone()),
                )
            })
            .collect();
        LOCALES
            .try_lookup_with_args(self.id(), key, &map)
            .unwrap_or_else(|| key.to_owned())
    }

    /// A date as the language writes it: `30/11/2026` (vi), `30 Nov 2026` (en).
    pub fn date(self, d: chrono::NaiveDate) -> String {
        match self {
            Lang::Vi => d.format("%d/%m/%Y").to_string(),
            Lang::En => d.format("%-d %b %Y").to_string(),
        }
    }

    /// A moment in the window's local time: `30/11/2026 14:05` (vi), `30 Nov 2026, 14:05` (en).
    pub fn datetime(self, t: chrono::DateTime<chrono::Utc>, offset: chrono::FixedOffset) -> String {
        let local = t.with_timezone(&offset);
        match self {
            Lang::Vi => local.format("%d/%m/%Y %H:%M").to_string(),
            Lang::En => local.format("%-d %b %Y, %H:%M").to_string(),
        }
    }

    /// A decimal number with the language's separators: `1.234.567,5` (vi), `1,234,567.5` (en).
    /// Trailing zeros of the fraction are dropped.
    pub fn number(self, n: &rust_decimal::Decimal) -> String {
        let text = n.normalize().to_string();
        let (sign, digits) = match text.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", text.as_str()),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let (group, point) = match self {
            Lang::Vi => ('.', ','),
            Lang::En => (',', '.'),
        };
        let mut out = String::with_capacity(text.len() + text.len() / 3);
        out.push_str(sign);
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                out.push(group);
            }
            out.push(c);
        }
        if !frac.is_empty() {
            out.push(point);
            out.push_str(frac);
        }
        out
    }

    /// An amount of Viet Nam dong, which has no minor unit: `1.500.000 ₫` (vi),
    /// `VND 1,500,000` (en).
    pub fn vnd(self, amount: i64) -> String {
        let n = self.number(&rust_decimal::Decimal::from(amount));
        match self {
            Lang::Vi => format!("{n} ₫"),
            Lang::En => format!("VND {n}"),
        }
    }

    /// An amount in another currency, with its ISO 4217 code: `12.500,5 USD` / `USD 12,500.5`.
    pub fn money(self, amount: &rust_decimal::Decimal, currency: &str) -> String {
        if currency == "VND" {
            return self.vnd(amount.round().try_into().unwrap_or(i64::MAX));
        }
        let n = self.number(amount);
        match self {
            Lang::Vi => format!("{n} {currency}"),
            Lang::En => format!("{currency} {n}"),
        }
    }
}

/// The language of a request: the switch's cookie, then `Accept-Language` (by quality), then
/// `default`.
pub fn negotiate(req: &HttpRequest, default: Lang) -> Lang {
    if let Some(l) = req.cookie(COOKIE).and_then(|c| Lang::parse(c.value())) {
        return l;
    }
    let header = req
        .headers()
        .get(actix_web::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut best: Option<(f32, Lang)> = None;
    for part in header.split(',') {
        let mut bits = part.split(';');
        let tag = bits.next().unwrap_or("").trim();
        let q = bits
            .find_map(|b| b.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if let Some(lang) = Lang::parse(tag) {
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
    }
    best.map_or(default, |(_, l)| l)
}

/// Every message key of a catalogue file set, for the parity test.
pub fn keys_of(lang: Lang) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("locales")
        .join(lang.code());
    let mut keys = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            let Some((key, _)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim_end();
            if !key.is_empty()
                && !line.starts_with([' ', '\t', '#', '.', '['])
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                keys.push(key.to_owned());
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let mut vi = keys_of(Lang::Vi);
        let mut en = keys_of(Lang::En);
        assert!(!vi.is_empty());
        vi.sort();
        en.sort();
        let only_vi: Vec<_> = vi.iter().filter(|k| !en.contains(k)).collect();
        let only_en: Vec<_> = en.iter().filter(|k| !vi.contains(k)).collect();
        assert!(
            only_vi.is_empty() && only_en.is_empty(),
            "only in vi: {only_vi:?}; only in en: {only_en:?}"
        );
        let mut dedup = vi.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), vi.len(), "a key defined twice in vi");
    }

    /// The `$variables` a message of the catalogues uses.
    fn variables_of(lang: Lang, key: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("locales")
            .join(lang.code());
        let mut vars = Vec::new();
        for f in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let text = std::fs::read_to_string(f.path()).unwrap();
            let mut inside = false;
            for line in text.lines() {
                if !line.starts_with([' ', '\t']) {
                    inside = line
                        .split_once('=')
                        .is_some_and(|(k, _)| k.trim_end() == key);
                }
                if inside {
                    for part in line.split('$').skip(1) {
                        let name: String = part
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                            .collect();
                        if !name.is_empty() && !vars.contains(&name) {
                            vars.push(name);
                        }
                    }
                }
            }
        }
        vars
    }

    #[test]
    fn every_key_resolves_in_both_languages() {
        for lang in Lang::ALL {
            for key in keys_of(lang) {
                let vars = variables_of(lang, &key);
                let args: Vec<(&str, String)> =
                    vars.iter().map(|v| (v.as_str(), "1".to_owned())).collect();
                assert_ne!(
                    lang.t_args(&key, &args),
                    key,
                    "{key} does not resolve in {}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn numbers_dates_and_money_follow_the_language() {
        use rust_decimal::Decimal;
        let n: Decimal = "1234567.50".parse().unwrap();
        assert_eq!(Lang::Vi.number(&n), "1.234.567,5");
        assert_eq!(Lang::En.number(&n), "1,234,567.5");
        assert_eq!(Lang::Vi.number(&"-999".parse().unwrap()), "-999");
        assert_eq!(Lang::Vi.vnd(1_500_000), "1.500.000 ₫");
        assert_eq!(Lang::En.vnd(1_500_000), "VND 1,500,000");
        let d = chrono::NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        assert_eq!(Lang::Vi.date(d), "03/11/2026");
        assert_eq!(Lang::En.date(d), "3 Nov 2026");
    }

    #[test]
    fn accept_language_picks_the_best_offered() {
        let req = |h: &str| {
            actix_web::test::TestRequest::default()
                .insert_header(("Accept-Language", h))
                .to_http_request()
        };
        assert_eq!(negotiate(&req("en-GB,en;q=0.9"), Lang::Vi), Lang::En);
        assert_eq!(
            negotiate(&req("fr, vi;q=0.5, en;q=0.4"), Lang::En),
            Lang::Vi
        );
        assert_eq!(negotiate(&req("fr"), Lang::Vi), Lang::Vi);
        assert_eq!(negotiate(&req("en;q=0"), Lang::Vi), Lang::Vi);
    }
}
