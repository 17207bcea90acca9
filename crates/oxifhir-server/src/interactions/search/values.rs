//! Search values by parameter type (FHIR search, "Search parameter types"): escaping, prefixes,
//! and each value turned into the [`EntryTest`] the store runs against index entries,
//! prepared exactly as extraction prepared the entries.

use oxifhir_model::index::{normalize, precision_range};
use oxifhir_model::{DateRange, Instant, fhirpath, id, resource_type, ucum};
use oxifhir_store::{
    DateTest, EntryTest, NumberTest, Prefix, QuantityTest, ReferenceTest, StringTest, TokenSystem,
    TokenTest, UriTest,
};

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::route::truncate;

/// Splits `text` on `separator` where it is not escaped with `\`; escapes stay in the parts
/// (see [`unescape`]).
pub fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Removes the `\` before `,`, `|`, `$` and `\`.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && matches!(next, ',' | '|' | '$' | '\\')
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn bad_value(param: &str, value: &str, what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid value '{}' for search parameter '{}': {what}",
        truncate(value, 80),
        truncate(param, 64)
    ))
    .at(param.to_string())
}

/// Splits a leading prefix (`eq` when there is none).
pub fn prefix(value: &str) -> (Prefix, &str) {
    let found = match value.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, value),
    };
    (found, &value[2..])
}

/// A date value with its prefix: the range `[start, end)` it covers (widened for `ap` by a
/// tenth of its distance from now, at least its own length, as the FHIR search page
/// suggests).
pub fn date(param: &str, value: &str) -> ApiResult<DateTest> {
    let (prefix, text) = prefix(value);
    let range = DateRange::parse(text).ok_or_else(|| {
        bad_value(
            param,
            value,
            "not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)",
        )
    })?;
    let (mut start, mut end) = (range.start, range.end);
    if prefix == Prefix::Ap {
        let slack = ((Instant::now().millis() - start).abs() / 10).max(end - start);
        start = start.saturating_sub(slack);
        end = end.saturating_add(slack);
    }
    Ok(DateTest { prefix, start, end })
}

/// A number value with its prefix and precision range (for `ap`, ±10% of the value, at
/// least the precision range).
pub fn number(param: &str, value: &str) -> ApiResult<NumberTest> {
    let (prefix, text) = prefix(value);
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'e' | b'E' | b'+'));
    let (value_f, mut low, mut high) = plain
        .then(|| precision_range(text))
        .flatten()
        .ok_or_else(|| bad_value(param, value, "not a number"))?;
    if prefix == Prefix::Ap {
        let tenth = value_f.abs() / 10.0;
        low = low.min(value_f - tenth);
        high = high.max(value_f + tenth);
    }
    Ok(NumberTest {
        prefix,
        value: value_f,
        low,
        high,
    })
}

/// A quantity value: `[prefix]number[|system|code]`; with an empty system the code may match
/// the unit too. A UCUM unit that converts to a canonical one ([`oxifhir_model::ucum`]) is
/// searched in the canonical unit, in which extraction stores such quantities too.
pub fn quantity(param: &str, value: &str) -> ApiResult<QuantityTest> {
    let mut test = quantity_as_written(param, value)?;
    if test.system.as_deref() == Some(ucum::SYSTEM)
        && let Some(conversion) = test.code.as_deref().and_then(ucum::conversion)
    {
        let n = &mut test.number;
        n.value = conversion.apply(n.value);
        n.low = conversion.apply(n.low);
        n.high = conversion.apply(n.high);
        test.code = Some(conversion.canonical.to_string());
    }
    Ok(test)
}

fn quantity_as_written(param: &str, value: &str) -> ApiResult<QuantityTest> {
    let parts = split_unescaped(value, '|');
    let (number_text, system, code) = match parts.as_slice() {
        [n] => (*n, None, None),
        [n, s, c] => (*n, Some(unescape(s)), Some(unescape(c))),
        _ => {
            return Err(bad_value(
                param,
                value,
                "a quantity is number, number|system|code or number||code",
            ));
        }
    };
    Ok(QuantityTest {
        number: number(param, number_text)?,
        system: system.filter(|s| !s.is_empty()),
        code: code.filter(|c| !c.is_empty()),
    })
}

/// A string value: starts-with by default, `:exact`, `:contains`.
pub fn string(value: &str, modifier: Option<&str>) -> EntryTest {
    let text = unescape(value);
    EntryTest::String(match modifier {
        Some("exact") => StringTest::Exact(text),
        Some("contains") => StringTest::Contains(normalize(&text)),
        _ => StringTest::StartsWith(normalize(&text)),
    })
}

/// A token value: `code`, `system|code`, `|code` or `system|`; `:text` searches the display
/// text (word prefixes, normalized).
pub fn token(param: &str, value: &str, modifier: Option<&str>) -> ApiResult<EntryTest> {
    if modifier == Some("text") {
        return Ok(EntryTest::Token(TokenTest::Text(normalize(&unescape(
            value,
        )))));
    }
    let parts = split_unescaped(value, '|');
    let test = match parts.as_slice() {
        [code] => TokenTest::Code {
            system: TokenSystem::Any,
            code: unescape(code),
        },
        ["", ""] => return Err(bad_value(param, value, "a token needs a system or a code")),
        ["", code] => TokenTest::Code {
            system: TokenSystem::None,
            code: unescape(code),
        },
        [system, ""] => TokenTest::System(unescape(system)),
        [system, code] => TokenTest::Code {
            system: TokenSystem::Is(unescape(system)),
            code: unescape(code),
        },
        _ => {
            return Err(bad_value(
                param,
                value,
                "a token is code, system|code, |code or system|",
            ));
        }
    };
    Ok(EntryTest::Token(test))
}

/// A `:of-type` token value `system|code|value`: the identifier's type coding and its value,
/// as extraction stores them under `{param}:of-type`.
pub fn of_type(param: &str, value: &str) -> ApiResult<EntryTest> {
    match split_unescaped(value, '|').as_slice() {
        [system, code, identifier] if !code.is_empty() && !identifier.is_empty() => {
            Ok(EntryTest::Token(TokenTest::Code {
                system: if system.is_empty() {
                    TokenSystem::None
                } else {
                    TokenSystem::Is(unescape(system))
                },
                code: format!("{}|{}", unescape(code), unescape(identifier)),
            }))
        }
        _ => Err(bad_value(
            param,
            value,
            ":of-type takes system|code|value (the identifier type and the value)",
        )),
    }
}

/// A reference value: `Type/id`, `id` (of `types` when a `:Type` modifier names one), an
/// absolute URL (under this server's base: as `Type/id`), or anything else as the reference
/// exactly as written.
pub fn reference(
    config: &ServerConfig,
    param: &str,
    value: &str,
    types: &[String],
) -> ApiResult<EntryTest> {
    let text = unescape(value);
    let base = format!("{}/", config.base_url);
    let relative = text.strip_prefix(&base).unwrap_or(&text);
    let target = |t: &str, i: &str| -> ApiResult<EntryTest> {
        if !types.is_empty() && !types.iter().any(|x| x == t) {
            return Err(bad_value(
                param,
                value,
                "the reference's type differs from the :Type modifier",
            ));
        }
        Ok(EntryTest::Reference(ReferenceTest::Target {
            types: vec![t.to_string()],
            ids: vec![i.to_string()],
        }))
    };
    if !relative.contains("://") && !relative.starts_with("urn:") {
        if let Some((t, i)) = fhirpath::reference_target(relative) {
            return target(t, i);
        }
        if id::is_valid(relative) {
            return Ok(EntryTest::Reference(ReferenceTest::Target {
                types: types.to_vec(),
                ids: vec![relative.to_string()],
            }));
        }
        if let Some((t, _)) = relative.split_once('/')
            && resource_type::is_known(t)
        {
            return Err(bad_value(param, value, "not a valid Type/id reference"));
        }
    }
    Ok(EntryTest::Reference(ReferenceTest::Url(text)))
}

/// A uri value: equal; `:below` the value or under it (path segments); `:above` the value or
/// one of its parents.
pub fn uri(value: &str, modifier: Option<&str>) -> Vec<EntryTest> {
    let text = unescape(value);
    match modifier {
        Some("below") if text.ends_with('/') => vec![EntryTest::Uri(UriTest::Below(text))],
        Some("below") => {
            let under = format!("{text}/");
            vec![
                EntryTest::Uri(UriTest::Is(text)),
                EntryTest::Uri(UriTest::Below(under)),
            ]
        }
        Some("above") => vec![EntryTest::Uri(UriTest::OneOf(parents(&text)))],
        _ => vec![EntryTest::Uri(UriTest::Is(text))],
    }
}

/// `uri` and the uris above it at `/` boundaries, down to the scheme and authority
/// (`http://a.org/fhir/ValueSet/x` → itself, `…/ValueSet`, `…/fhir`, `http://a.org`), with and
/// without a trailing `/`.
fn parents(uri: &str) -> Vec<String> {
    let authority_end = uri
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| uri[start..].find('/').map(|j| start + j))
        .unwrap_or(uri.len());
    let mut out = vec![uri.to_string()];
    let mut end = uri.trim_end_matches('/').len();
    while end > authority_end {
        let Some(slash) = uri[..end].rfind('/') else {
            break;
        };
        if slash < authority_end {
            break;
        }
        out.push(uri[..slash].to_string());
        out.push(uri[..=slash].to_string());
        end = slash;
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(split_unescaped(r"a,b\,c,,d", ','), ["a", r"b\,c", "", "d"]);
        assert_eq!(unescape(r"b\,c\|d\$e\\f\x"), r"b,c|d$e\f\x");
        assert_eq!(split_unescaped(r"s\|x|c", '|'), [r"s\|x", "c"]);
    }

    #[test]
    fn prefixes_and_dates() {
        assert_eq!(prefix("ge2020"), (Prefix::Ge, "2020"));
        assert_eq!(prefix("2020"), (Prefix::Eq, "2020"));
        let d = date("birthdate", "lt2020-02").unwrap();
        let feb = DateRange::parse("2020-02").unwrap();
        assert_eq!((d.prefix, d.start, d.end), (Prefix::Lt, feb.start, feb.end));
        assert_eq!(date("birthdate", "2020-13").unwrap_err().status(), 400);
        assert_eq!(date("birthdate", "xx2020").unwrap_err().status(), 400);
        let ap = date("birthdate", "ap2020-02-01").unwrap();
        assert!(ap.start < feb.start && ap.end > feb.start + 86_400_000);
    }

    #[test]
    fn numbers_and_quantities() {
        let n = number("length", "gt1.50").unwrap();
        assert_eq!(
            (n.prefix, n.value, n.low, n.high),
            (Prefix::Gt, 1.5, 1.495, 1.505)
        );
        let n = number("length", "100").unwrap();
        assert_eq!((n.low, n.high), (99.5, 100.5));
        let ap = number("length", "ap100").unwrap();
        assert_eq!((ap.low, ap.high), (90.0, 110.0));
        for bad in ["", "abc", "1,5", "0x10", "1.2.3", "NaN"] {
            assert!(number("length", bad).is_err(), "{bad}");
        }
        let q = quantity("value-quantity", "le5400|http://unitsofmeasure.org|mg").unwrap();
        assert_eq!(q.number.prefix, Prefix::Le);
        assert_eq!(q.system.as_deref(), Some("http://unitsofmeasure.org"));
        assert_eq!(q.code.as_deref(), Some("g"), "in the canonical unit");
        assert_eq!(
            (q.number.value, q.number.low, q.number.high),
            (5.4, 5.3995, 5.4005)
        );
        let q = quantity("value-quantity", "5.4|http://unitsofmeasure.org|mm[Hg]").unwrap();
        assert_eq!((q.number.value, q.code.as_deref()), (5.4, Some("mm[Hg]")));
        let q = quantity("value-quantity", "5.4||mg").unwrap();
        assert_eq!((q.system, q.code.as_deref()), (None, Some("mg")));
        assert!(quantity("value-quantity", "5|mg").is_err());
    }

    #[test]
    fn tokens() {
        let code = |s: TokenSystem, c: &str| {
            EntryTest::Token(TokenTest::Code {
                system: s,
                code: c.into(),
            })
        };
        assert_eq!(token("c", "x", None).unwrap(), code(TokenSystem::Any, "x"));
        assert_eq!(
            token("c", "|x", None).unwrap(),
            code(TokenSystem::None, "x")
        );
        assert_eq!(
            token("c", "http://s|x", None).unwrap(),
            code(TokenSystem::Is("http://s".into()), "x")
        );
        assert_eq!(
            token("c", "http://s|", None).unwrap(),
            EntryTest::Token(TokenTest::System("http://s".into()))
        );
        assert_eq!(
            token("c", r"a\|b", None).unwrap(),
            code(TokenSystem::Any, "a|b")
        );
        assert!(token("c", "|", None).is_err());
        assert!(token("c", "a|b|c", None).is_err());
        assert_eq!(
            token("c", "Heart Rate", Some("text")).unwrap(),
            EntryTest::Token(TokenTest::Text("heart rate".into()))
        );
        assert_eq!(
            of_type("identifier", "http://t|MR|123").unwrap(),
            code(TokenSystem::Is("http://t".into()), "MR|123")
        );
        assert!(of_type("identifier", "MR|123").is_err());
    }

    #[test]
    fn references() {
        let config = ServerConfig::default();
        let target = |types: &[&str], id: &str| {
            EntryTest::Reference(ReferenceTest::Target {
                types: types.iter().map(|t| t.to_string()).collect(),
                ids: vec![id.into()],
            })
        };
        assert_eq!(
            reference(&config, "subject", "Patient/1", &[]).unwrap(),
            target(&["Patient"], "1")
        );
        assert_eq!(
            reference(&config, "subject", "1", &[]).unwrap(),
            target(&[], "1")
        );
        assert_eq!(
            reference(&config, "subject", "1", &["Group".into()]).unwrap(),
            target(&["Group"], "1")
        );
        assert!(reference(&config, "subject", "Patient/1", &["Group".into()]).is_err());
        assert_eq!(
            reference(
                &config,
                "subject",
                "http://127.0.0.1:8080/fhir/Patient/1/_history/2",
                &[]
            )
            .unwrap(),
            target(&["Patient"], "1")
        );
        assert_eq!(
            reference(&config, "subject", "http://other.org/fhir/Patient/1", &[]).unwrap(),
            EntryTest::Reference(ReferenceTest::Url("http://other.org/fhir/Patient/1".into()))
        );
        assert!(reference(&config, "subject", "Patient/not valid", &[]).is_err());
    }

    #[test]
    fn uris() {
        assert_eq!(
            parents("http://a.org/fhir/ValueSet/x"),
            [
                "http://a.org",
                "http://a.org/",
                "http://a.org/fhir",
                "http://a.org/fhir/",
                "http://a.org/fhir/ValueSet",
                "http://a.org/fhir/ValueSet/",
                "http://a.org/fhir/ValueSet/x"
            ]
        );
        assert_eq!(parents("urn:oid:1.2"), ["urn:oid:1.2"]);
        assert_eq!(
            uri("http://a.org/fhir", Some("below")),
            [
                EntryTest::Uri(UriTest::Is("http://a.org/fhir".into())),
                EntryTest::Uri(UriTest::Below("http://a.org/fhir/".into()))
            ]
        );
    }
}
