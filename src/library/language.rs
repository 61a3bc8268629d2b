//! Track languages: ISO 639 codes and names as containers and file names give them, read into BCP 47 tags and English names.

use isolang::Language as Iso;

/// A known language: the tag HLS's `LANGUAGE` attribute wants (RFC 5646) and a name to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// The shortest tag: the ISO 639-1 code where there is one (`fr`), else ISO 639-3 (`fil`),
    /// with a region if one was given (`pt-BR`).
    pub tag: String,
    /// The language's English name (`French`).
    pub name: &'static str,
}

/// ISO 639-2/B codes (bibliographic) that differ from the ISO 639-2/T codes ISO 639-3 uses;
/// Matroska files and subtitle file names often carry them (`fre`, `ger`).
const BIBLIOGRAPHIC: [(&str, &str); 20] = [
    ("alb", "sqi"),
    ("arm", "hye"),
    ("baq", "eus"),
    ("bur", "mya"),
    ("chi", "zho"),
    ("cze", "ces"),
    ("dut", "nld"),
    ("fre", "fra"),
    ("geo", "kat"),
    ("ger", "deu"),
    ("gre", "ell"),
    ("ice", "isl"),
    ("mac", "mkd"),
    ("mao", "mri"),
    ("may", "msa"),
    ("per", "fas"),
    ("rum", "ron"),
    ("slo", "slk"),
    ("tib", "bod"),
    ("wel", "cym"),
];

impl Language {
    /// Reads a language code (`fr`, `fre`, `fra`, `pt-BR`, `pt_BR`) or an English name
    /// (`French`, case ignored). `None` for what names no language: empty, `und`, `mul`,
    /// `zxx`, `mis`, or anything unknown.
    pub fn parse(code: &str) -> Option<Language> {
        let code = code.trim();
        let (base, region) = match code.split_once(['-', '_']) {
            Some((base, region)) => (base, Some(region)),
            None => (code, None),
        };
        let lower = base.to_ascii_lowercase();
        let iso = match lower.len() {
            2 => Iso::from_639_1(&lower),
            3 => {
                let terminological = BIBLIOGRAPHIC
                    .iter()
                    .find(|(b, _)| *b == lower)
                    .map_or(lower.as_str(), |(_, t)| t);
                Iso::from_639_3(terminological)
            }
            _ => Iso::from_name_lowercase(&lower),
        }?;
        if matches!(iso.to_639_3(), "und" | "mul" | "zxx" | "mis") {
            return None;
        }
        let mut tag = iso.to_639_1().unwrap_or(iso.to_639_3()).to_owned();
        // A region is two letters or three digits (RFC 5646); anything else is left out.
        if let Some(region) = region.filter(|r| {
            (r.len() == 2 && r.bytes().all(|b| b.is_ascii_alphabetic()))
                || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
        }) {
            tag.push('-');
            tag.push_str(&region.to_ascii_uppercase());
        }
        Some(Language {
            tag,
            name: iso.to_name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(code: &str) -> Option<String> {
        Language::parse(code).map(|l| l.tag)
    }

    #[test]
    fn codes_of_every_kind_become_short_tags() {
        assert_eq!(tag("fr"), Some("fr".into()));
        assert_eq!(tag("fre"), Some("fr".into()));
        assert_eq!(tag("fra"), Some("fr".into()));
        assert_eq!(tag("GER"), Some("de".into()));
        assert_eq!(tag("eng"), Some("en".into()));
        assert_eq!(tag("fil"), Some("fil".into()));
        assert_eq!(tag("pt_br"), Some("pt-BR".into()));
        assert_eq!(tag("es-419"), Some("es-419".into()));
        assert_eq!(tag("French"), Some("fr".into()));
        assert_eq!(Language::parse("fre").map(|l| l.name), Some("French"));
    }

    #[test]
    fn no_language_is_none() {
        for code in ["", "und", "mul", "zxx", "xx", "qqq", "forced"] {
            assert_eq!(tag(code), None, "{code}");
        }
    }
}
