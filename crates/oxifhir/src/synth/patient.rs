//! One synthetic patient: the Patient resource (names, MRN, gender, birth date, address,
//! telecom, language, general practitioner) and, through [`clinical`], everything recorded
//! about them.

use serde_json::{Map, Value, json};

use super::clinical;
use super::output::{Batch, Kind};
use super::rng::{Rng, Stream, date};
use super::vocab::{self, Locale};
use super::{Plan, organization_ref, patient_ref, practitioner_ref};

/// The system of the medical record numbers.
pub const MRN_SYSTEM: &str = "https://synth.oxifhir.example/fhir/sid/mrn";

/// What the clinical generators need to know about a patient.
pub struct PatientContext {
    /// 1-based patient number.
    pub index: u32,
    /// `Patient/pat-000001`.
    pub reference: String,
    /// Date of birth, in days since 1970-01-01.
    pub birth_day: i64,
    /// Age in whole years at the plan's epoch.
    pub age: i64,
    pub female: bool,
    /// The Practitioner (1-based) who sees them most.
    pub home_practitioner: u32,
}

/// What the Groups need to know about a generated patient.
pub struct PatientFacts {
    pub age: i64,
    pub diabetic: bool,
}

/// Age bands (years, low..=high) and how often each is drawn.
const AGE_BANDS: &[(i64, i64)] = &[(0, 17), (18, 44), (45, 64), (65, 99)];
const AGE_WEIGHTS: &[u32] = &[20, 35, 25, 20];

/// Writes patient `index` and their clinical record.
pub fn generate(plan: &Plan, index: u32, out: &mut Batch) -> anyhow::Result<PatientFacts> {
    let mut rng = Rng::new(plan.seed, Stream::Patient, u64::from(index));
    let locale = vocab::locale(&mut rng);
    let (low, high) = AGE_BANDS[rng.weighted(AGE_WEIGHTS)];
    // At least a month old, so that there is room for an encounter before the epoch.
    let age_days = rng.range(low * 365 + 30, high * 365 + 364);
    let birth_day = plan.epoch_day - age_days;
    let age = age_days * 400 / 146_097;
    let gender = match rng.below(1000) {
        0..=504 => "female",
        505..=994 => "male",
        995..=997 => "other",
        _ => "unknown",
    };
    let female = match gender {
        "female" => true,
        "male" => false,
        _ => rng.chance(500),
    };
    let context = PatientContext {
        index,
        reference: patient_ref(index),
        birth_day,
        age,
        female,
        home_practitioner: plan.home_practitioner(index),
    };

    let (given, family) = human_name(&mut rng, locale, female);
    let mut names = vec![json!({"use": "official", "family": family, "given": given})];
    let married = age >= 18 && rng.chance(450);
    if married && female && rng.chance(600) {
        let (_, maiden) = human_name(&mut rng, locale, female);
        names.push(json!({"use": "maiden", "family": maiden, "given": given}));
    }
    let mut telecom = vec![json!({
        "system": "phone",
        "value": vocab::phone(&mut rng, locale),
        "use": if rng.chance(600) { "mobile" } else { "home" },
    })];
    if age >= 16 && rng.chance(800) {
        let email = format!(
            "{}.{}.{index}@example.org",
            vocab::ascii_slug(given[0]),
            vocab::ascii_slug(&family)
        );
        telecom.push(json!({"system": "email", "value": email, "use": "home"}));
    }
    let (line, city, state, postal) = vocab::address(&mut rng, locale);
    // 48271 is prime, so this is a bijection on 0..10^8: MRNs are unique and look random.
    let mrn = (u64::from(index) * 48_271 + plan.seed % 100_000_000) % 100_000_000;

    let mut patient = Map::with_capacity(16);
    patient.insert("resourceType".into(), "Patient".into());
    patient.insert("id".into(), format!("pat-{index:06}").into());
    patient.insert(
        "identifier".into(),
        json!([{
            "use": "usual",
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": "MR",
                "display": "Medical record number",
            }]},
            "system": MRN_SYSTEM,
            "value": format!("M{mrn:08}"),
        }]),
    );
    patient.insert("active".into(), true.into());
    patient.insert("name".into(), names.into());
    patient.insert("telecom".into(), telecom.into());
    patient.insert("gender".into(), gender.into());
    patient.insert("birthDate".into(), date(birth_day).into());
    patient.insert(
        "address".into(),
        json!([{
            "use": "home",
            "type": "physical",
            "line": [line],
            "city": city,
            "state": state,
            "postalCode": postal,
            "country": locale.country,
        }]),
    );
    if age >= 18 {
        let (code, display) = if married {
            ("M", "Married")
        } else {
            *rng.pick(&[("S", "Never Married"), ("D", "Divorced"), ("W", "Widowed")])
        };
        patient.insert(
            "maritalStatus".into(),
            json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                "code": code,
                "display": display,
            }]}),
        );
    }
    let (tag, language) = locale.language;
    patient.insert(
        "communication".into(),
        json!([{
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": tag, "display": language}]},
            "preferred": true,
        }]),
    );
    patient.insert(
        "generalPractitioner".into(),
        json!([{"reference": practitioner_ref(context.home_practitioner)}]),
    );
    let organization = plan.organization_of(context.home_practitioner);
    patient.insert(
        "managingOrganization".into(),
        json!({"reference": organization_ref(organization)}),
    );
    out.emit(Kind::Patient, &Value::Object(patient))?;

    let diabetic = clinical::generate(plan, &context, &mut rng, out);
    Ok(PatientFacts { age, diabetic })
}

/// Given names (one, sometimes two) and a family name from `locale`; Spanish family names
/// are often two surnames.
pub fn human_name(rng: &mut Rng, locale: &Locale, female: bool) -> (Vec<&'static str>, String) {
    let first_names = if female { locale.female } else { locale.male };
    let mut given = vec![*rng.pick(first_names)];
    if rng.chance(250) {
        let middle = *rng.pick(first_names);
        if middle != given[0] {
            given.push(middle);
        }
    }
    let mut family = (*rng.pick(locale.family)).to_owned();
    if locale.country == "ES" && rng.chance(600) {
        let second = *rng.pick(locale.family);
        if second != family {
            family = format!("{family} {second}");
        }
    }
    (given, family)
}
