//! A patient's clinical record: Encounters over the ten years before the epoch, and at each
//! one vital signs, sometimes labs, new diagnoses (chronic ones once, acute ones that resolve)
//! and MedicationRequests (the treatment of an acute problem, renewals for chronic ones).
//!
//! Values are plausible for the patient: children weigh less and have faster hearts,
//! hypertensive patients have higher blood pressure, diabetic ones higher glucose and HbA1c,
//! and labs outside their reference range are flagged high or low.

use super::Plan;
use super::chart::Chart;
use super::codes::{self, ConditionCode};
use super::output::Batch;
use super::patient::PatientContext;
use super::rng::Rng;

/// About how many resources each Encounter brings (itself, its Observations, Conditions and
/// MedicationRequests), in tenths, and how many a patient has besides (their Patient resource
/// and their share of the pools); they turn `--per-patient` into a number of encounters.
const RESOURCES_PER_ENCOUNTER_TENTHS: u32 = 66;
const RESOURCES_BESIDES_ENCOUNTERS: u32 = 8;

/// The encounters are spread over this many days before the epoch (ten years).
const HISTORY_DAYS: i64 = 3653;

/// Writes the clinical record of `patient`; returns whether they have type 2 diabetes.
pub fn generate(plan: &Plan, patient: &PatientContext, rng: &mut Rng, out: &mut Batch) -> bool {
    let days = encounter_days(plan, patient, rng);
    let count = days.len() as u64;
    // Chronic conditions and the encounter each is diagnosed at (earlier ones likelier).
    let mut chronic: Vec<(&ConditionCode, usize, Option<String>)> = Vec::new();
    for condition in codes::CHRONIC {
        let per_mille = match patient.age {
            age if age < condition.min_age => continue,
            age if age >= 65 => condition.per_mille * 2,
            age if age < 30 => condition.per_mille / 3,
            _ => condition.per_mille,
        };
        if rng.chance(per_mille) {
            let at = rng.below(count).min(rng.below(count)) as usize;
            chronic.push((condition, at, None));
        }
    }
    let has = |index: usize| {
        let code = codes::CHRONIC[index].code;
        chronic
            .iter()
            .any(|(condition, _, _)| condition.code == code)
    };
    let diabetic = has(codes::DIABETES);
    let hypertensive = has(codes::HYPERTENSION);
    let adult_weight = if patient.female {
        rng.bell(680, 70)
    } else {
        rng.bell(830, 80)
    } + if diabetic { 120 } else { 0 };

    let mut chart = Chart::new(plan, patient, out);
    for (k, &day) in days.iter().enumerate() {
        let class = &codes::ENCOUNTER_CLASSES[rng.weighted(&class_weights())];
        let visit = chart.encounter(rng, class, day);
        let age = (day - patient.birth_day) * 400 / 146_097;

        // Vital signs, taken a few minutes into the encounter.
        let time = visit.start + rng.range(2, 10) * 60;
        let child_rate = if age < 12 { 25 } else { 0 };
        let rate = rng.bell(codes::HEART_RATE.mean + child_rate, codes::HEART_RATE.sd);
        chart.vital(&visit, &codes::HEART_RATE, time, rate);
        if age >= 3 {
            let raise = if hypertensive { (16, 9) } else { (0, 0) };
            let systolic = rng.bell(codes::SYSTOLIC.mean + raise.0, codes::SYSTOLIC.sd);
            let diastolic = rng.bell(codes::DIASTOLIC.mean + raise.1, codes::DIASTOLIC.sd);
            chart.blood_pressure(&visit, time, systolic, diastolic);
        }
        if rng.chance(850) {
            let weight = if age < 18 {
                rng.bell(35 + age * 32, 8 + age * 3)
            } else {
                rng.bell(adult_weight, 12)
            };
            chart.vital(&visit, &codes::BODY_WEIGHT, time, weight);
        }
        if class.code != "AMB" || rng.chance(550) {
            let fever = if class.code == "EMER" && rng.chance(300) {
                15
            } else {
                0
            };
            let mean = codes::BODY_TEMPERATURE.mean + fever;
            let temperature = rng.bell(mean, codes::BODY_TEMPERATURE.sd);
            chart.vital(&visit, &codes::BODY_TEMPERATURE, time, temperature);
        }

        // Labs: a few at most ambulatory visits, more in hospital; glucose and HbA1c at
        // diabetic patients' check-ups.
        let labs = match class.code {
            "AMB" if diabetic && rng.chance(600) => vec![0, 2],
            "AMB" if rng.chance(350) => distinct_labs(rng, 1, 3),
            "AMB" => Vec::new(),
            "EMER" => distinct_labs(rng, 2, 4),
            _ => distinct_labs(rng, 3, 6),
        };
        let drawn = visit.start + rng.range(10, 14) * 60;
        for lab in labs {
            let measure = &codes::LABS[lab];
            let mean = match measure.diabetic_mean {
                Some(mean) if diabetic => mean,
                _ => measure.mean,
            };
            chart.lab(&visit, measure, drawn, rng.bell(mean, measure.sd));
        }

        // New diagnoses: the chronic conditions diagnosed at this encounter, and maybe an
        // acute problem treated at once.
        for (condition, at, reference) in &mut chronic {
            if *at == k {
                *reference = Some(chart.condition(rng, &visit, condition, true));
            }
        }
        let acute_per_mille = match class.code {
            "AMB" => 180,
            "EMER" => 700,
            _ => 300,
        };
        if rng.chance(acute_per_mille) {
            let weights: Vec<u32> = codes::ACUTE
                .iter()
                .map(|c| if age >= c.min_age { c.per_mille } else { 0 })
                .collect();
            let condition = &codes::ACUTE[rng.weighted(&weights)];
            let reference = chart.condition(rng, &visit, condition, false);
            if let Some(medication) = condition.medication.filter(|_| rng.chance(800)) {
                chart.prescription(rng, &visit, medication, &reference, false);
            }
        }
        // Chronic treatments: started at diagnosis, renewed at about half the encounters.
        for (condition, at, reference) in &chronic {
            let (Some(medication), Some(reference)) = (condition.medication, reference) else {
                continue;
            };
            if (*at == k && rng.chance(850)) || (*at < k && rng.chance(450)) {
                chart.prescription(rng, &visit, medication, reference, true);
            }
        }
    }
    diabetic
}

/// How often each encounter class is drawn.
fn class_weights() -> [u32; 3] {
    let classes = codes::ENCOUNTER_CLASSES;
    [classes[0].weight, classes[1].weight, classes[2].weight]
}

/// The days of a patient's encounters, in order: as many as `--per-patient` asks for on
/// average (more for the elderly, fewer for children), between birth (or ten years before
/// the epoch) and the day before the epoch.
fn encounter_days(plan: &Plan, patient: &PatientContext, rng: &mut Rng) -> Vec<i64> {
    let budget = plan
        .per_patient
        .saturating_sub(RESOURCES_BESIDES_ENCOUNTERS);
    let mean_tenths = u64::from((budget * 100 / RESOURCES_PER_ENCOUNTER_TENTHS).max(10));
    let age_percent = match patient.age {
        age if age >= 65 => 130,
        age if age < 18 => 80,
        _ => 100,
    };
    let spread_percent = rng.range(40, 160) as u64;
    let count = ((mean_tenths * spread_percent * age_percent + 50_000) / 100_000).max(1);
    let first = (patient.birth_day + 1).max(plan.epoch_day - HISTORY_DAYS);
    let last = plan.epoch_day - 1;
    let mut days: Vec<i64> = (0..count).map(|_| rng.range(first, last)).collect();
    days.sort_unstable();
    days
}

/// Between `low` and `high` distinct lab indices, in [`codes::LABS`] order.
fn distinct_labs(rng: &mut Rng, low: i64, high: i64) -> Vec<usize> {
    let wanted = rng.range(low, high) as usize;
    let mut chosen = vec![false; codes::LABS.len()];
    let mut picked = 0;
    while picked < wanted.min(chosen.len()) {
        let index = rng.below(chosen.len() as u64) as usize;
        if !chosen[index] {
            chosen[index] = true;
            picked += 1;
        }
    }
    (0..chosen.len()).filter(|&index| chosen[index]).collect()
}
