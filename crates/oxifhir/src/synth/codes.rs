//! The clinical vocabulary of `oxifhir synth`: LOINC vital signs and labs with their UCUM
//! units and plausible distributions, SNOMED CT conditions with the RxNorm medication that
//! treats each, and the encounter classes. Code systems are the canonical FHIR URIs.

/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";
/// RxNorm.
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
/// UCUM, the units of `valueQuantity`.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The FHIR observation categories (`vital-signs`, `laboratory`).
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// HL7 v3 ActCode, the system of `Encounter.class`.
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// A quantity that is measured: a vital sign or a lab.
pub struct Measure {
    /// LOINC code and display.
    pub code: &'static str,
    pub display: &'static str,
    /// UCUM code and its human-readable unit.
    pub ucum: &'static str,
    pub unit: &'static str,
    /// Digits after the decimal point; the numbers below are in units of 10^-decimals.
    pub decimals: u32,
    /// Mean and standard deviation (scaled by `decimals`).
    pub mean: i64,
    pub sd: i64,
    /// The mean for a patient with type 2 diabetes, where it differs.
    pub diabetic_mean: Option<i64>,
    /// Reference range (scaled by `decimals`), for labs.
    pub range: Option<(i64, i64)>,
}

/// Heart rate.
pub const HEART_RATE: Measure = vital("8867-4", "Heart rate", "/min", "beats/minute", 0, 74, 8);
/// Body weight; its mean comes from the patient.
pub const BODY_WEIGHT: Measure = vital("29463-7", "Body weight", "kg", "kg", 1, 0, 0);
/// Body temperature.
pub const BODY_TEMPERATURE: Measure = vital("8310-5", "Body temperature", "Cel", "°C", 1, 368, 2);
/// The blood pressure panel, whose values are two components.
pub const BLOOD_PRESSURE: (&str, &str) =
    ("85354-9", "Blood pressure panel with all children optional");
/// Systolic blood pressure (a component).
pub const SYSTOLIC: Measure = vital(
    "8480-6",
    "Systolic blood pressure",
    "mm[Hg]",
    "mmHg",
    0,
    122,
    7,
);
/// Diastolic blood pressure (a component).
pub const DIASTOLIC: Measure = vital(
    "8462-4",
    "Diastolic blood pressure",
    "mm[Hg]",
    "mmHg",
    0,
    78,
    5,
);

const fn vital(
    code: &'static str,
    display: &'static str,
    ucum: &'static str,
    unit: &'static str,
    decimals: u32,
    mean: i64,
    sd: i64,
) -> Measure {
    Measure {
        code,
        display,
        ucum,
        unit,
        decimals,
        mean,
        sd,
        diabetic_mean: None,
        range: None,
    }
}

/// Laboratory results.
pub const LABS: &[Measure] = &[
    Measure {
        code: "2339-0",
        display: "Glucose [Mass/volume] in Blood",
        ucum: "mg/dL",
        unit: "mg/dL",
        decimals: 0,
        mean: 92,
        sd: 8,
        diabetic_mean: Some(155),
        range: Some((70, 99)),
    },
    Measure {
        code: "718-7",
        display: "Hemoglobin [Mass/volume] in Blood",
        ucum: "g/dL",
        unit: "g/dL",
        decimals: 1,
        mean: 140,
        sd: 9,
        diabetic_mean: None,
        range: Some((120, 175)),
    },
    Measure {
        code: "4548-4",
        display: "Hemoglobin A1c/Hemoglobin.total in Blood",
        ucum: "%",
        unit: "%",
        decimals: 1,
        mean: 52,
        sd: 2,
        diabetic_mean: Some(78),
        range: Some((40, 56)),
    },
    Measure {
        code: "2160-0",
        display: "Creatinine [Mass/volume] in Serum or Plasma",
        ucum: "mg/dL",
        unit: "mg/dL",
        decimals: 2,
        mean: 92,
        sd: 10,
        diabetic_mean: Some(110),
        range: Some((60, 130)),
    },
    Measure {
        code: "2093-3",
        display: "Cholesterol [Mass/volume] in Serum or Plasma",
        ucum: "mg/dL",
        unit: "mg/dL",
        decimals: 0,
        mean: 190,
        sd: 18,
        diabetic_mean: None,
        range: Some((0, 200)),
    },
    Measure {
        code: "6690-2",
        display: "Leukocytes [#/volume] in Blood by Automated count",
        ucum: "10*3/uL",
        unit: "10*3/uL",
        decimals: 1,
        mean: 72,
        sd: 9,
        diabetic_mean: None,
        range: Some((45, 110)),
    },
];

/// A condition and what is prescribed for it.
pub struct ConditionCode {
    /// SNOMED CT code and display.
    pub code: &'static str,
    pub display: &'static str,
    /// The youngest age (years) at which it is given.
    pub min_age: i64,
    /// Chronic conditions: the chance (‰) that an adult old enough has it. Acute ones: the
    /// weight of drawing it at an encounter.
    pub per_mille: u32,
    /// The medication prescribed for it, an index into [`MEDICATIONS`].
    pub medication: Option<usize>,
}

/// Chronic conditions: they stay active, and their medication is renewed at encounters.
#[rustfmt::skip] // A table laid out by hand, one row per line.
pub const CHRONIC: &[ConditionCode] = &[
    condition("44054006", "Diabetes mellitus type 2 (disorder)", 30, 130, Some(0)),
    condition("38341003", "Hypertensive disorder, systemic arterial (disorder)", 30, 260, Some(1)),
    condition("55822004", "Hyperlipidemia (disorder)", 35, 170, Some(2)),
    condition("195967001", "Asthma (disorder)", 3, 80, Some(3)),
    condition("13645005", "Chronic obstructive lung disease (disorder)", 45, 50, Some(3)),
    condition("35489007", "Depressive disorder (disorder)", 14, 90, Some(4)),
    condition("49436004", "Atrial fibrillation (disorder)", 50, 50, Some(5)),
    condition("271737000", "Anemia (disorder)", 0, 40, Some(6)),
];

/// The index of type 2 diabetes in [`CHRONIC`].
pub const DIABETES: usize = 0;
/// The index of hypertension in [`CHRONIC`].
pub const HYPERTENSION: usize = 1;

/// Acute conditions: resolved after a few weeks.
#[rustfmt::skip] // A table laid out by hand, one row per line.
pub const ACUTE: &[ConditionCode] = &[
    condition("444814009", "Viral sinusitis (disorder)", 0, 30, Some(7)),
    condition("10509002", "Acute bronchitis (disorder)", 0, 20, Some(7)),
    condition("233604007", "Pneumonia (disorder)", 0, 8, Some(8)),
    condition("43878008", "Streptococcal sore throat (disorder)", 0, 12, Some(9)),
    condition("65363002", "Otitis media (disorder)", 0, 10, Some(10)),
    condition("68566005", "Urinary tract infectious disease (disorder)", 12, 10, Some(11)),
    condition("39848009", "Whiplash injury to neck (disorder)", 16, 5, Some(12)),
    condition("62106007", "Concussion with no loss of consciousness (disorder)", 5, 4, None),
];

const fn condition(
    code: &'static str,
    display: &'static str,
    min_age: i64,
    per_mille: u32,
    medication: Option<usize>,
) -> ConditionCode {
    ConditionCode {
        code,
        display,
        min_age,
        per_mille,
        medication,
    }
}

/// A medication: RxNorm code, display and the dosage text and times per day.
pub struct Medication {
    pub code: &'static str,
    pub display: &'static str,
    pub dosage: &'static str,
    pub per_day: u32,
}

/// Medications (see [`ConditionCode::medication`]).
#[rustfmt::skip] // A table laid out by hand, one row per line.
pub const MEDICATIONS: &[Medication] = &[
    medication("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet", "1 tablet once daily with the evening meal", 1),
    medication("314076", "lisinopril 10 MG Oral Tablet", "1 tablet once daily", 1),
    medication("259255", "atorvastatin 80 MG Oral Tablet", "1 tablet once daily at bedtime", 1),
    medication("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "2 puffs every 6 hours as needed", 4),
    medication("312938", "sertraline 100 MG Oral Tablet", "1 tablet once daily", 1),
    medication("855332", "warfarin sodium 5 MG Oral Tablet", "1 tablet once daily, adjusted to INR", 1),
    medication("310325", "ferrous sulfate 325 MG Oral Tablet", "1 tablet twice daily", 2),
    medication("313782", "acetaminophen 325 MG Oral Tablet", "2 tablets every 6 hours as needed", 4),
    medication("308182", "amoxicillin 250 MG Oral Capsule", "2 capsules three times daily for 7 days", 3),
    medication("834061", "penicillin V potassium 250 MG Oral Tablet", "1 tablet four times daily for 10 days", 4),
    medication("562251", "amoxicillin 250 MG / clavulanate 125 MG Oral Tablet", "1 tablet three times daily for 7 days", 3),
    medication("309309", "ciprofloxacin 500 MG Oral Tablet", "1 tablet twice daily for 3 days", 2),
    medication("849574", "naproxen sodium 220 MG Oral Tablet", "1 tablet every 12 hours as needed", 2),
];

const fn medication(
    code: &'static str,
    display: &'static str,
    dosage: &'static str,
    per_day: u32,
) -> Medication {
    Medication {
        code,
        display,
        dosage,
        per_day,
    }
}

/// An encounter class: ActCode code and display, the SNOMED encounter type, how often it is
/// drawn (weight) and how long it lasts (minutes, low..=high).
pub struct EncounterClass {
    pub code: &'static str,
    pub display: &'static str,
    pub type_code: &'static str,
    pub type_display: &'static str,
    pub weight: u32,
    pub minutes: (i64, i64),
}

/// Ambulatory, emergency and inpatient encounters.
pub const ENCOUNTER_CLASSES: &[EncounterClass] = &[
    EncounterClass {
        code: "AMB",
        display: "ambulatory",
        type_code: "185349003",
        type_display: "Encounter for check up (procedure)",
        weight: 82,
        minutes: (15, 60),
    },
    EncounterClass {
        code: "EMER",
        display: "emergency",
        type_code: "50849002",
        type_display: "Emergency room admission (procedure)",
        weight: 11,
        minutes: (90, 480),
    },
    EncounterClass {
        code: "IMP",
        display: "inpatient encounter",
        type_code: "32485007",
        type_display: "Hospital admission (procedure)",
        weight: 7,
        minutes: (1440, 8640),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medication_indices_exist() {
        for condition in CHRONIC.iter().chain(ACUTE) {
            if let Some(index) = condition.medication {
                assert!(index < MEDICATIONS.len(), "{}", condition.display);
            }
        }
        assert_eq!(CHRONIC[DIABETES].code, "44054006");
        assert_eq!(CHRONIC[HYPERTENSION].code, "38341003");
    }
}
