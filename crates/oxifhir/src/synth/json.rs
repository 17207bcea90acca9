//! A small streaming JSON writer for the high-volume resources of `oxifhir synth`
//! (Encounters, Observations, Conditions, MedicationRequests, Slots, Appointments).
//!
//! Building a `serde_json::Value` costs an ordered map, a hash and an allocation per element;
//! for millions of resources that dominated the run time. Here each resource is written
//! straight into its NDJSON buffer, in the order the calls are made. Keys are trusted
//! (they are string literals: ASCII element names); values are escaped. The low-volume
//! resources (Patient, Practitioner, Organization, Group) keep the more readable `json!`.

/// An open JSON object; its `}` is written when the closure that fills it returns.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

/// An open JSON array; its `]` is written when the closure that fills it returns.
pub struct Array<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

/// Writes one object into `out`, filled by `build`.
pub fn object(out: &mut Vec<u8>, build: impl FnOnce(&mut Object)) {
    out.push(b'{');
    build(&mut Object { out, empty: true });
    out.push(b'}');
}

impl Object<'_> {
    /// Writes `"key":` (after a comma unless this is the first element).
    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// `"key": "value"`.
    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        string(self.out, value);
        self
    }

    /// `"key": 123`.
    pub fn integer(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        integer(self.out, value);
        self
    }

    /// `"key": 12.30`: `scaled / 10^decimals`, with exactly `decimals` digits after the
    /// point (a FHIR decimal keeps its precision: `72.0` is not `72`).
    pub fn decimal(&mut self, key: &str, scaled: i64, decimals: u32) -> &mut Self {
        self.key(key);
        if scaled < 0 {
            self.out.push(b'-');
        }
        let magnitude = scaled.unsigned_abs();
        let unit = 10_u64.pow(decimals);
        integer(self.out, (magnitude / unit) as i64);
        if decimals > 0 {
            self.out.push(b'.');
            let fraction = magnitude % unit;
            for power in (0..decimals).rev() {
                self.out
                    .push(b'0' + (fraction / 10_u64.pow(power) % 10) as u8);
            }
        }
        self
    }

    /// `"key": true`.
    pub fn boolean(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// `"key": {...}`.
    pub fn object(&mut self, key: &str, build: impl FnOnce(&mut Object)) -> &mut Self {
        self.key(key);
        object(self.out, build);
        self
    }

    /// `"key": [...]`.
    pub fn array(&mut self, key: &str, build: impl FnOnce(&mut Array)) -> &mut Self {
        self.key(key);
        self.out.push(b'[');
        build(&mut Array {
            out: self.out,
            empty: true,
        });
        self.out.push(b']');
        self
    }

    /// `"key": {"reference": "Type/id"}`.
    pub fn reference(&mut self, key: &str, reference: &str) -> &mut Self {
        self.object(key, |o| {
            o.string("reference", reference);
        })
    }

    /// The elements of a Coding: `"system"`, `"code"`, `"display"`.
    pub fn coding(&mut self, system: &str, code: &str, display: &str) -> &mut Self {
        self.string("system", system)
            .string("code", code)
            .string("display", display)
    }

    /// `"key": {"coding": [{system, code, display}], "text": display}`, a CodeableConcept.
    pub fn concept(&mut self, key: &str, system: &str, code: &str, display: &str) -> &mut Self {
        self.object(key, |o| {
            o.array("coding", |a| {
                a.object(|c| {
                    c.coding(system, code, display);
                });
            })
            .string("text", display);
        })
    }

    /// `"key": [{"coding": [{system, code, display}]}]`, a list of one CodeableConcept
    /// without text (categories and the like).
    pub fn categories(&mut self, key: &str, system: &str, code: &str, display: &str) -> &mut Self {
        self.array(key, |a| {
            a.object(|o| {
                o.array("coding", |a| {
                    a.object(|c| {
                        c.coding(system, code, display);
                    });
                });
            });
        })
    }
}

impl Array<'_> {
    /// Writes the comma before every element but the first.
    fn separate(&mut self) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
    }

    /// An object element.
    pub fn object(&mut self, build: impl FnOnce(&mut Object)) -> &mut Self {
        self.separate();
        object(self.out, build);
        self
    }
}

/// Writes `value` as a JSON string; values that need escaping go through serde_json.
fn string(out: &mut Vec<u8>, value: &str) {
    let needs_escape = |byte: u8| byte < 0x20 || byte == b'"' || byte == b'\\';
    if value.bytes().any(needs_escape) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
        return;
    }
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
}

/// Writes `value` in decimal.
fn integer(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    let mut digits = [0_u8; 20];
    let mut rest = value.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(build: impl FnOnce(&mut Object)) -> String {
        let mut out = Vec::new();
        object(&mut out, build);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_what_serde_json_reads_back() {
        let text = written(|o| {
            o.string("a", "Zoë \"Q\" \\ \n\u{1}")
                .integer("b", -1_234_567_890)
                .integer("zero", 0)
                .decimal("c", 7205, 2)
                .decimal("d", 5, 3)
                .decimal("e", 98, 0)
                .decimal("f", -15, 1)
                .boolean("g", false)
                .reference("subject", "Patient/pat-000001")
                .concept("code", "http://loinc.org", "8867-4", "Heart rate")
                .array("empty", |_| {})
                .array("list", |a| {
                    a.object(|_| {}).object(|o| {
                        o.integer("x", 1);
                    });
                });
        });
        assert_eq!(
            text,
            r#"{"a":"Zoë \"Q\" \\ \n\u0001","b":-1234567890,"zero":0,"c":72.05,"d":0.005,"e":98,"f":-1.5,"g":false,"subject":{"reference":"Patient/pat-000001"},"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},"empty":[],"list":[{},{"x":1}]}"#
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["a"], "Zoë \"Q\" \\ \n\u{1}");
        assert_eq!(value["c"].to_string(), "72.05");
    }
}
