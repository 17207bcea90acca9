//! The `Prefer` header (RFC 7240) as FHIR uses it: a comma-separated list of preferences.

/// What `Prefer: return=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnPreference {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

/// What `Prefer: handling=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    #[default]
    Lenient,
    Strict,
}

/// The preferences of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preferences {
    pub return_: ReturnPreference,
    pub respond_async: bool,
    pub handling: Handling,
    /// `handling=lenient` was given explicitly (Bulk Data reports ignored parameters then).
    pub lenient_explicit: bool,
}

impl Preferences {
    /// Parses a `Prefer` header; unknown preferences are ignored, as RFC 7240 asks.
    pub fn parse(header: Option<&str>) -> Self {
        let mut prefs = Preferences::default();
        for item in header.unwrap_or("").split(',') {
            let token = item.split(';').next().unwrap_or("").trim();
            let (name, value) = match token.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim().trim_matches('"')),
                None => (token, ""),
            };
            match (name.to_ascii_lowercase().as_str(), value) {
                ("return", "minimal") => prefs.return_ = ReturnPreference::Minimal,
                ("return", "representation") => prefs.return_ = ReturnPreference::Representation,
                ("return", "OperationOutcome") => {
                    prefs.return_ = ReturnPreference::OperationOutcome
                }
                ("respond-async", _) => prefs.respond_async = true,
                ("handling", "strict") => prefs.handling = Handling::Strict,
                ("handling", "lenient") => {
                    prefs.handling = Handling::Lenient;
                    prefs.lenient_explicit = true;
                }
                _ => {}
            }
        }
        prefs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        let p = Preferences::parse(Some("respond-async, handling=lenient"));
        assert!(p.respond_async && p.lenient_explicit);
        let p = Preferences::parse(Some("return=minimal"));
        assert_eq!(p.return_, ReturnPreference::Minimal);
        let p = Preferences::parse(Some("return=OperationOutcome;x=y, handling=strict"));
        assert_eq!(
            (p.return_, p.handling),
            (ReturnPreference::OperationOutcome, Handling::Strict)
        );
        assert_eq!(Preferences::parse(None), Preferences::default());
        assert_eq!(
            Preferences::parse(Some("garbage,,=")),
            Preferences::default()
        );
    }
}
