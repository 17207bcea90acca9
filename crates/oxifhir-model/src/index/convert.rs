//! From the nodes a search parameter's expression yields to index entries, by parameter type
//! and node type (FHIR R4 search, "Search parameter types"). A node whose type is not known
//! (an element the schema does not define, `AsyncJob`) is read by its shape. Nodes that give
//! nothing for the parameter type (an `Age` for a date, a `SampledData` for a quantity) are
//! skipped.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Number, Value};
use unicode_normalization::UnicodeNormalization;

use super::{
    CompiledParam, DateEntry, IndexEntries, NumberEntry, QuantityEntry, ReferenceEntry,
    StringEntry, TokenEntry, UriEntry,
};
use crate::DateRange;
use crate::fhirpath::{Item, reference_target};
use crate::search_param::SearchParamType;

/// `text` lower-cased with accents removed (`Müller` → `muller`, `Ångström` → `angstrom`):
/// how `string` values and token texts are stored, and how search values must be prepared to
/// match them.
///
/// Accents are the combining diacritical marks left by canonical decomposition (NFD), as HAPI
/// removes them. Other combining marks stay: in scripts such as Devanagari (vowel signs) or
/// Japanese (the voicing mark of `が`) they are letters' essential parts, and dropping them
/// would make different words equal.
pub fn normalize(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.nfd()
        .filter(|c| !is_diacritic(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The combining diacritical marks (with their extended, supplement and half-mark blocks).
fn is_diacritic(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// Adds the entries `item` gives for `param`.
pub(super) fn add(param: &CompiledParam, item: Item<'_>, out: &mut IndexEntries) {
    add_as(&param.code, param.kind, item, out);
}

/// Adds the entries `item` gives as values of a parameter of `kind` named `code`.
pub(super) fn add_as(code: &str, kind: SearchParamType, item: Item<'_>, out: &mut IndexEntries) {
    let value = item.value();
    let ty = item.type_name();
    match kind {
        SearchParamType::String => strings(code, value, ty, &mut out.strings),
        SearchParamType::Token => {
            tokens(code, value, ty, &mut out.tokens);
            identifier_types(code, value, ty, &mut out.tokens);
        }
        SearchParamType::Reference => references(code, value, ty, &mut out.references),
        SearchParamType::Date => dates(code, value, ty, &mut out.dates),
        SearchParamType::Number => numbers(code, value, ty, &mut out.numbers),
        SearchParamType::Quantity => {
            let first = out.quantities.len();
            quantities(code, value, ty, &mut out.quantities);
            canonical_units(&mut out.quantities, first);
        }
        SearchParamType::Uri => {
            if let Some(s) = non_empty(value) {
                out.uris.push(UriEntry {
                    param: code.to_string(),
                    value: s.to_string(),
                });
            }
        }
        SearchParamType::Composite | SearchParamType::Special => {}
    }
}

fn non_empty(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.trim().is_empty())
}

/// The string `key` of an object, if it has a non-blank one.
fn field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(non_empty)
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

/// `string`: a string itself; a `HumanName`'s family, given, prefix, suffix and text; an
/// `Address`'s lines, city, district, state, postal code, country and text.
fn strings(param: &str, value: &Value, ty: Option<&str>, out: &mut Vec<StringEntry>) {
    const NAME: &[&str] = &["family", "given", "prefix", "suffix", "text"];
    const ADDRESS: &[&str] = &[
        "line",
        "city",
        "district",
        "state",
        "postalCode",
        "country",
        "text",
    ];
    let mut push = |s: &str| {
        if !s.trim().is_empty() {
            out.push(StringEntry {
                param: param.to_string(),
                normalized: normalize(s),
                exact: s.to_string(),
            });
        }
    };
    let map = match value {
        Value::String(s) => return push(s),
        Value::Object(map) => map,
        _ => return,
    };
    let parts = match ty {
        Some("HumanName") => NAME,
        Some("Address") => ADDRESS,
        Some(_) => return,
        None if map.contains_key("family") || map.contains_key("given") => NAME,
        None if map.contains_key("line") || map.contains_key("city") => ADDRESS,
        None => return,
    };
    for part in parts {
        match map.get(*part) {
            Some(Value::String(s)) => push(s),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut push),
            _ => {}
        }
    }
}

/// `token`: a code, string, id, uri or boolean as a code without system; a `Coding`; each
/// coding of a `CodeableConcept` (text from `CodeableConcept.text`, else the display; the
/// text alone when there is no coding); an `Identifier` (value as code, text from
/// `type.text`); a `ContactPoint` (value as code, its `system` — `phone`, `email` — as
/// system, as HAPI does).
fn tokens(param: &str, value: &Value, ty: Option<&str>, out: &mut Vec<TokenEntry>) {
    let mut push = |system: Option<&str>, code: Option<&str>, text: Option<&str>| {
        if system.is_some() || code.is_some() || text.is_some() {
            out.push(TokenEntry {
                param: param.to_string(),
                system: owned(system),
                code: owned(code),
                text: text.map(normalize),
            });
        }
    };
    let map = match value {
        Value::String(s) => return push(None, Some(s.as_str()).filter(|s| !s.is_empty()), None),
        Value::Bool(b) => return push(None, Some(if *b { "true" } else { "false" }), None),
        Value::Number(n) => return push(None, Some(n.as_str()), None),
        Value::Object(map) => map,
        _ => return,
    };
    let shape = match ty {
        Some(t @ ("Coding" | "CodeableConcept" | "Identifier" | "ContactPoint")) => t,
        Some(_) => return,
        None if map.contains_key("coding") => "CodeableConcept",
        None if map.contains_key("value") => "Identifier",
        None if map.contains_key("code") => "Coding",
        None if map.contains_key("text") => "CodeableConcept",
        None => return,
    };
    match shape {
        "Coding" => push(
            field(map, "system"),
            field(map, "code"),
            field(map, "display"),
        ),
        "CodeableConcept" => {
            let text = field(map, "text");
            let codings = map
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object);
            let mut any = false;
            for c in codings {
                any = true;
                let display = text.or_else(|| field(c, "display"));
                push(field(c, "system"), field(c, "code"), display);
            }
            if !any {
                push(None, None, text);
            }
        }
        "ContactPoint" => {
            if let Some(v) = field(map, "value") {
                push(field(map, "system"), Some(v), None);
            }
        }
        _ => {
            let text = map
                .get("type")
                .and_then(|t| t.get("text"))
                .and_then(non_empty);
            push(field(map, "system"), field(map, "value"), text);
        }
    }
}

/// `:of-type`: an `Identifier` with a `type` also gives, under `{param}:of-type`, one token
/// per type coding whose code is `{type code}|{value}` in the coding's system.
fn identifier_types(param: &str, value: &Value, ty: Option<&str>, out: &mut Vec<TokenEntry>) {
    let Value::Object(map) = value else { return };
    let identifier = ty == Some("Identifier")
        || (ty.is_none() && map.contains_key("value") && map.contains_key("type"));
    let Some(identifier_value) = field(map, "value").filter(|_| identifier) else {
        return;
    };
    let codings = map
        .get("type")
        .and_then(|t| t.get("coding"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object);
    for coding in codings {
        if let Some(code) = field(coding, "code") {
            out.push(TokenEntry {
                param: format!("{param}:of-type"),
                system: owned(field(coding, "system")),
                code: Some(format!("{code}|{identifier_value}")),
                text: None,
            });
        }
    }
}

/// Adds, for each UCUM quantity from `first` on whose unit converts to another canonical
/// unit ([`crate::ucum`]), the same quantity in the canonical unit (without a display unit).
fn canonical_units(out: &mut Vec<QuantityEntry>, first: usize) {
    for i in first..out.len() {
        let entry = &out[i];
        if entry.system.as_deref() != Some(crate::ucum::SYSTEM) {
            continue;
        }
        let Some(conversion) = entry.code.as_deref().and_then(crate::ucum::conversion) else {
            continue;
        };
        if entry.code.as_deref() == Some(conversion.canonical) {
            continue;
        }
        // Open ends of a Range stay open.
        let scale = |x: f64| {
            if x == f64::MIN || x == f64::MAX {
                x
            } else {
                conversion.apply(x)
            }
        };
        let converted = QuantityEntry {
            param: entry.param.clone(),
            value: scale(entry.value),
            low: scale(entry.low),
            high: scale(entry.high),
            system: entry.system.clone(),
            code: Some(conversion.canonical.to_string()),
            unit: None,
        };
        out.push(converted);
    }
}

/// `reference`: a `Reference`'s `reference` (with its target when it is a literal `Type/id`,
/// relative or absolute, history dropped); a canonical or uri as a url alone; a resource
/// (`Bundle.entry[0].resource`) as `Type/id`; an `Attachment`'s url.
fn references(param: &str, value: &Value, ty: Option<&str>, out: &mut Vec<ReferenceEntry>) {
    let mut push = |url: &str, target: Option<(&str, &str)>| {
        out.push(ReferenceEntry {
            param: param.to_string(),
            target_type: target.map(|(t, _)| t.to_string()),
            target_id: target.map(|(_, id)| id.to_string()),
            url: url.to_string(),
        });
    };
    let map = match value {
        Value::String(s) if !s.trim().is_empty() => return push(s, None),
        Value::Object(map) => map,
        _ => return,
    };
    if let Some(reference) = field(map, "reference") {
        return push(reference, reference_target(reference));
    }
    if let (Some(resource_type), Some(id)) = (field(map, "resourceType"), field(map, "id")) {
        let url = format!("{resource_type}/{id}");
        if let Some(target) = reference_target(&url) {
            push(&url, Some(target));
        }
        return;
    }
    if ty == Some("Attachment")
        && let Some(url) = field(map, "url")
    {
        push(url, None);
    }
}

/// The `[start, end]` milliseconds (end inclusive) a date, dateTime or instant covers.
fn date_range(text: &str) -> Option<(i64, i64)> {
    let range = DateRange::parse(text)?;
    Some((range.start, range.end - 1))
}

/// A `Period`'s range; an open end is `i64::MIN` or `i64::MAX`.
fn period(map: &Map<String, Value>) -> Option<(i64, i64)> {
    let start = field(map, "start").and_then(date_range).map(|r| r.0);
    let end = field(map, "end").and_then(date_range).map(|r| r.1);
    if start.is_none() && end.is_none() {
        return None;
    }
    Some((start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX)))
}

/// `date`: a date, dateTime or instant; a `Period`; a `Timing` as the outer limits of its
/// events and `repeat.boundsPeriod`. `Age`, `Duration`, `Range` and strings that are not
/// dates give nothing.
fn dates(param: &str, value: &Value, ty: Option<&str>, out: &mut Vec<DateEntry>) {
    let range = match value {
        Value::String(s) => date_range(s),
        Value::Object(map) => match ty {
            Some("Period") => period(map),
            Some("Timing") => timing(map),
            Some(_) => None,
            None if map.contains_key("start") || map.contains_key("end") => period(map),
            None if map.contains_key("event") || map.contains_key("repeat") => timing(map),
            None => None,
        },
        _ => None,
    };
    if let Some((start, end)) = range {
        out.push(DateEntry {
            param: param.to_string(),
            start,
            end,
        });
    }
}

fn timing(map: &Map<String, Value>) -> Option<(i64, i64)> {
    let events = map
        .get("event")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(date_range);
    let bounds = map
        .get("repeat")
        .and_then(|r| r.get("boundsPeriod"))
        .and_then(Value::as_object)
        .and_then(period);
    events
        .chain(bounds)
        .reduce(|(s1, e1), (s2, e2)| (s1.min(s2), e1.max(e2)))
}

/// A number and the range `[low, high]` its written precision implies: `1.50` is
/// `[1.495, 1.505]`, `100` is `[99.5, 100.5]`, `1.0e2` is `[95, 105]`. The bounds are
/// computed in decimal (`12.30` gives exactly `12.295` and `12.305`, not `12.305000000000001`),
/// in binary floating point only for literals of more than 37 digits. `None` if the number is
/// not finite as an `f64`.
pub(super) fn number_range(n: &Number) -> Option<(f64, f64, f64)> {
    let finite = |v: &f64| v.is_finite();
    let value = n.as_f64().filter(finite)?;
    let text = n.as_str();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let scale = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    // value = digits × 10^scale; the bounds are (2 × digits ∓ 1) × 5 × 10^(scale − 1).
    let digits = format!("{whole}{fraction}").parse::<i128>().ok();
    let bound = |delta: i128| -> Option<f64> {
        let b = digits?.checked_mul(2)?.checked_add(delta)?.checked_mul(5)?;
        format!("{b}e{}", i64::from(scale) - 1)
            .parse::<f64>()
            .ok()
            .filter(finite)
    };
    if let (Some(low), Some(high)) = (bound(-1), bound(1)) {
        return Some((value, low, high));
    }
    let half = 0.5 * 10f64.powi(scale);
    Some((value, value - half, value + half))
}

/// `number`: a decimal or integer with its precision range; a `Range` from its low to its
/// high value (open ends at `f64::MIN`/`f64::MAX`, value the low end, else the high one).
fn numbers(param: &str, value: &Value, ty: Option<&str>, out: &mut Vec<NumberEntry>) {
    let found = match value {
        Value::Number(n) => number_range(n),
        Value::Object(map) if is_range(map, ty) => range(map).map(|(v, l, h, _)| (v, l, h)),
        _ => None,
    };
    if let Some((value, low, high)) = found {
        out.push(NumberEntry {
            param: param.to_string(),
            value,
            low,
            high,
        });
    }
}

fn is_range(map: &Map<String, Value>, ty: Option<&str>) -> bool {
    ty == Some("Range") || (ty.is_none() && (map.contains_key("low") || map.contains_key("high")))
}

/// A `Range`'s value, low and high ends, and the quantity its units come from.
fn range(map: &Map<String, Value>) -> Option<(f64, f64, f64, &Map<String, Value>)> {
    let end = |key: &str| {
        let q = map.get(key)?.as_object()?;
        let (value, low, high) = number_range(q.get("value")?.as_number()?)?;
        Some((value, low, high, q))
    };
    let (low, high) = (end("low"), end("high"));
    let units = low.or(high)?.3;
    let value = low.or(high)?.0;
    let lowest = low.map_or(f64::MIN, |l| l.1);
    let highest = high.map_or(f64::MAX, |h| h.2);
    Some((value, lowest, highest, units))
}

/// `quantity`: a `Quantity` (and `Age`, `Duration`, `Count`, `Distance`, `SimpleQuantity`)
/// with its precision range, system, code and unit; `Money` with its currency as code in
/// `urn:iso:std:iso:4217`; a `Range` from low to high, units from its low (else high) end.
/// `SampledData` and other types give nothing.
fn quantities(param: &str, value: &Value, ty: Option<&str>, out: &mut Vec<QuantityEntry>) {
    let Value::Object(map) = value else { return };
    let mut push = |(value, low, high): (f64, f64, f64), units: &Map<String, Value>| {
        let (system, code) = match units.get("currency").and_then(non_empty) {
            Some(currency) => (Some("urn:iso:std:iso:4217"), Some(currency)),
            None => (field(units, "system"), field(units, "code")),
        };
        out.push(QuantityEntry {
            param: param.to_string(),
            value,
            low,
            high,
            system: owned(system),
            code: owned(code),
            unit: owned(field(units, "unit")),
        });
    };
    if is_range(map, ty) {
        if let Some((value, low, high, units)) = range(map) {
            push((value, low, high), units);
        }
        return;
    }
    let quantity_like = matches!(
        ty,
        None | Some(
            "Quantity"
                | "Age"
                | "Duration"
                | "Count"
                | "Distance"
                | "SimpleQuantity"
                | "MoneyQuantity"
                | "Money"
        )
    );
    if !quantity_like {
        return;
    }
    if let Some(found) = map
        .get("value")
        .and_then(Value::as_number)
        .and_then(number_range)
    {
        push(found, map);
    }
}

/// Appends to `out` a copy of every entry of `from`, named `code` (the entries of one value
/// repeated under several names, converted once).
pub(super) fn extend_named(from: &IndexEntries, code: &str, out: &mut IndexEntries) {
    fn copy<T: Clone>(from: &[T], to: &mut Vec<T>, rename: impl Fn(&mut T)) {
        to.extend(from.iter().map(|entry| {
            let mut entry = entry.clone();
            rename(&mut entry);
            entry
        }));
    }
    copy(&from.strings, &mut out.strings, |e| e.param = code.into());
    copy(&from.tokens, &mut out.tokens, |e| e.param = code.into());
    copy(&from.references, &mut out.references, |e| {
        e.param = code.into()
    });
    copy(&from.dates, &mut out.dates, |e| e.param = code.into());
    copy(&from.numbers, &mut out.numbers, |e| e.param = code.into());
    copy(&from.quantities, &mut out.quantities, |e| {
        e.param = code.into()
    });
    copy(&from.uris, &mut out.uris, |e| e.param = code.into());
}

/// The lengths of each entry list before one parameter's entries are added, to remove the
/// repeats among them afterwards.
pub(super) struct Marks([usize; 7]);

impl Marks {
    pub(super) fn of(e: &IndexEntries) -> Marks {
        Marks([
            e.strings.len(),
            e.tokens.len(),
            e.references.len(),
            e.dates.len(),
            e.numbers.len(),
            e.quantities.len(),
            e.uris.len(),
        ])
    }

    /// Removes repeated entries added since [`Marks::of`], keeping the first of each.
    pub(super) fn dedupe(&self, e: &mut IndexEntries) {
        if e.len() < self.0.iter().sum::<usize>() + 2 {
            return;
        }
        let [s, t, r, d, n, q, u] = self.0;
        dedupe_tail(&mut e.strings, s, |x, h| (&x.normalized, &x.exact).hash(h));
        dedupe_tail(&mut e.tokens, t, |x, h| {
            (&x.system, &x.code, &x.text).hash(h)
        });
        dedupe_tail(&mut e.references, r, |x, h| x.url.hash(h));
        dedupe_tail(&mut e.dates, d, |x, h| (x.start, x.end).hash(h));
        dedupe_tail(&mut e.numbers, n, |x, h| x.value.to_bits().hash(h));
        dedupe_tail(&mut e.quantities, q, |x, h| {
            (x.value.to_bits(), &x.system, &x.code, &x.unit).hash(h)
        });
        dedupe_tail(&mut e.uris, u, |x, h| x.value.hash(h));
    }
}

/// Removes the repeats among `v[start..]`. Few entries are compared pairwise; many are
/// bucketed by a hash of their key first, so a hostile resource cannot make this quadratic.
fn dedupe_tail<T: PartialEq>(v: &mut Vec<T>, start: usize, key: impl Fn(&T, &mut DefaultHasher)) {
    let added = v.len().saturating_sub(start);
    if added < 2 {
        return;
    }
    let tail = v.split_off(start);
    if added <= 16 {
        for entry in tail {
            if !v[start..].contains(&entry) {
                v.push(entry);
            }
        }
        return;
    }
    let mut buckets: HashMap<u64, Vec<usize>> = HashMap::with_capacity(added);
    for entry in tail {
        let mut hasher = DefaultHasher::new();
        key(&entry, &mut hasher);
        let bucket = buckets.entry(hasher.finish()).or_default();
        if !bucket.iter().any(|&i| v[i] == entry) {
            bucket.push(v.len());
            v.push(entry);
        }
    }
}
