//! UCUM units that convert to a canonical unit by a constant factor, so that a quantity search
//! in one unit finds values stored in another (`5 g` finds `5000 mg`). Quantities in such
//! units are indexed a second time in the canonical unit, and search values are converted
//! the same way; units outside this table compare by code: offset scales such as `Cel`, and
//! rates such as `/min`, which nearly always come in that one unit (converting them would
//! double the index rows of every heart rate for nothing).

/// The UCUM code system.
pub const SYSTEM: &str = "http://unitsofmeasure.org";

/// How a value in some unit becomes a value in the canonical unit: times `multiply`, then
/// divided by `divide` (powers of ten divide exactly, so `5000 mg` is exactly `5 g`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conversion {
    pub canonical: &'static str,
    pub multiply: f64,
    pub divide: f64,
}

impl Conversion {
    /// `value` in the canonical unit.
    pub fn apply(&self, value: f64) -> f64 {
        value * self.multiply / self.divide
    }
}

const fn c(canonical: &'static str, multiply: f64, divide: f64) -> Conversion {
    Conversion {
        canonical,
        multiply,
        divide,
    }
}

/// `(unit, conversion)`, canonical units included (factor 1).
const TABLE: &[(&str, Conversion)] = &[
    // Mass.
    ("g", c("g", 1.0, 1.0)),
    ("kg", c("g", 1000.0, 1.0)),
    ("mg", c("g", 1.0, 1e3)),
    ("ug", c("g", 1.0, 1e6)),
    ("ng", c("g", 1.0, 1e9)),
    ("pg", c("g", 1.0, 1e12)),
    ("[lb_av]", c("g", 453.592_37, 1.0)),
    ("[oz_av]", c("g", 28.349_523_125, 1.0)),
    // Volume.
    ("L", c("L", 1.0, 1.0)),
    ("l", c("L", 1.0, 1.0)),
    ("dL", c("L", 1.0, 10.0)),
    ("cL", c("L", 1.0, 100.0)),
    ("mL", c("L", 1.0, 1e3)),
    ("uL", c("L", 1.0, 1e6)),
    // Length.
    ("m", c("m", 1.0, 1.0)),
    ("km", c("m", 1000.0, 1.0)),
    ("cm", c("m", 1.0, 100.0)),
    ("mm", c("m", 1.0, 1e3)),
    ("um", c("m", 1.0, 1e6)),
    ("[in_i]", c("m", 254.0, 1e4)),
    ("[ft_i]", c("m", 3048.0, 1e4)),
    // Time.
    ("s", c("s", 1.0, 1.0)),
    ("ms", c("s", 1.0, 1e3)),
    ("min", c("s", 60.0, 1.0)),
    ("h", c("s", 3600.0, 1.0)),
    ("d", c("s", 86_400.0, 1.0)),
    ("wk", c("s", 604_800.0, 1.0)),
    ("mo", c("s", 2_629_800.0, 1.0)),
    ("a", c("s", 31_557_600.0, 1.0)),
    // Mass concentration.
    ("g/L", c("g/L", 1.0, 1.0)),
    ("g/dL", c("g/L", 10.0, 1.0)),
    ("mg/dL", c("g/L", 1.0, 100.0)),
    ("mg/L", c("g/L", 1.0, 1e3)),
    ("ug/mL", c("g/L", 1.0, 1e3)),
    ("ug/L", c("g/L", 1.0, 1e6)),
    ("ng/mL", c("g/L", 1.0, 1e6)),
    // Substance concentration.
    ("mol/L", c("mol/L", 1.0, 1.0)),
    ("mmol/L", c("mol/L", 1.0, 1e3)),
    ("umol/L", c("mol/L", 1.0, 1e6)),
    ("nmol/L", c("mol/L", 1.0, 1e9)),
];

/// The conversion of UCUM unit `code` to its canonical unit, if this table knows it.
pub fn conversion(code: &str) -> Option<Conversion> {
    TABLE.iter().find(|(u, _)| *u == code).map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_exact_for_decimal_factors() {
        assert_eq!(conversion("mg").map(|c| c.apply(5000.0)), Some(5.0));
        assert_eq!(conversion("kg").map(|c| c.apply(2.5)), Some(2500.0));
        assert_eq!(conversion("mg/dL").map(|c| c.apply(90.0)), Some(0.9));
        assert_eq!(conversion("mL").map(|c| c.canonical), Some("L"));
        assert_eq!(conversion("[in_i]").map(|c| c.apply(100.0)), Some(2.54));
        assert_eq!(conversion("Cel"), None);
        for (unit, conversion) in TABLE {
            assert_eq!(
                super::conversion(conversion.canonical).map(|c| c.apply(1.0)),
                Some(1.0),
                "{unit}: its canonical unit is in the table"
            );
        }
    }
}
