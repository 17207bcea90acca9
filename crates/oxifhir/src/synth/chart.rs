//! The resources written during an encounter: the Encounter itself, Observations (vital
//! signs with `valueQuantity` or components, labs with reference ranges and flags),
//! Conditions and MedicationRequests, each with a per-patient numbered id.

use super::codes::{self, ConditionCode, EncounterClass, Measure};
use super::json::Object;
use super::output::{Batch, Kind};
use super::patient::PatientContext;
use super::rng::{DAY, Rng, date_time};
use super::{Plan, organization_ref, practitioner_ref};

/// One encounter, as the resources recorded during it see it.
pub struct Visit {
    /// `Encounter/enc-000001-001`.
    pub reference: String,
    /// Start and end, in seconds since 1970.
    pub start: i64,
    pub end: i64,
    /// `Practitioner/prac-000001`: who sees the patient.
    pub practitioner: String,
}

/// The writer of one patient's clinical resources, with their per-patient counters.
pub struct Chart<'a> {
    plan: &'a Plan,
    patient: &'a PatientContext,
    out: &'a mut Batch,
    encounters: u32,
    observations: u32,
    conditions: u32,
    medications: u32,
}

impl<'a> Chart<'a> {
    /// An empty chart for `patient` of `plan`, writing to `out`.
    pub fn new(plan: &'a Plan, patient: &'a PatientContext, out: &'a mut Batch) -> Chart<'a> {
        Chart {
            plan,
            patient,
            out,
            encounters: 0,
            observations: 0,
            conditions: 0,
            medications: 0,
        }
    }

    /// Writes an Encounter on `day` and returns what the resources recorded in it need.
    pub fn encounter(&mut self, rng: &mut Rng, class: &EncounterClass, day: i64) -> Visit {
        self.encounters += 1;
        let id = format!("enc-{:06}-{:03}", self.patient.index, self.encounters);
        let practitioner = if rng.chance(750) {
            self.patient.home_practitioner
        } else {
            rng.range(1, i64::from(self.plan.practitioners)) as u32
        };
        let start_minute = if class.code == "AMB" {
            rng.range(8 * 60, 16 * 60 + 30)
        } else {
            rng.range(0, 24 * 60 - 1)
        };
        let start = day * DAY + start_minute * 60;
        let minutes = rng.range(class.minutes.0, class.minutes.1);
        // Nothing ends after the epoch: an admission near it is cut short.
        let end = (start + minutes * 60)
            .min(self.plan.epoch() - 60)
            .max(start);
        let visit = Visit {
            reference: format!("Encounter/{id}"),
            start,
            end,
            practitioner: practitioner_ref(practitioner),
        };
        let organization = organization_ref(self.plan.organization_of(practitioner));
        self.out.write(Kind::Encounter, |o| {
            o.string("id", &id)
                .string("status", "finished")
                .object("class", |c| {
                    c.coding(codes::ACT_CODE, class.code, class.display);
                })
                .array("type", |a| {
                    a.object(|t| {
                        t.array("coding", |a| {
                            a.object(|c| {
                                c.coding(codes::SNOMED, class.type_code, class.type_display);
                            });
                        })
                        .string("text", class.type_display);
                    });
                })
                .reference("subject", &self.patient.reference)
                .array("participant", |a| {
                    a.object(|p| {
                        p.categories("type", PARTICIPATION_TYPE, "PPRF", "primary performer")
                            .reference("individual", &visit.practitioner);
                    });
                })
                .object("period", |p| {
                    p.string("start", &date_time(start))
                        .string("end", &date_time(end));
                })
                .reference("serviceProvider", &organization);
        });
        visit
    }

    /// Writes an Observation in `visit` at `time`; `value` writes its value elements.
    fn observation(
        &mut self,
        visit: &Visit,
        laboratory: bool,
        code: (&str, &str),
        time: i64,
        value: impl FnOnce(&mut Object),
    ) {
        self.observations += 1;
        let (category, display) = if laboratory {
            ("laboratory", "Laboratory")
        } else {
            ("vital-signs", "Vital Signs")
        };
        let id = format!("obs-{:06}-{:04}", self.patient.index, self.observations);
        let patient = &self.patient.reference;
        self.out.write(Kind::Observation, |o| {
            o.string("id", &id)
                .string("status", "final")
                .categories("category", codes::OBSERVATION_CATEGORY, category, display)
                .concept("code", codes::LOINC, code.0, code.1)
                .reference("subject", patient)
                .reference("encounter", &visit.reference)
                .string("effectiveDateTime", &date_time(time.min(visit.end)));
            value(o);
        });
    }

    /// Writes a vital sign with one value (scaled by the measure's decimals).
    pub fn vital(&mut self, visit: &Visit, measure: &Measure, time: i64, value: i64) {
        self.observation(visit, false, (measure.code, measure.display), time, |o| {
            quantity(o, "valueQuantity", measure, value);
        });
    }

    /// Writes a blood pressure panel: systolic and diastolic as components.
    pub fn blood_pressure(&mut self, visit: &Visit, time: i64, systolic: i64, diastolic: i64) {
        let diastolic = diastolic.min(systolic - 20);
        self.observation(visit, false, codes::BLOOD_PRESSURE, time, |o| {
            o.array("component", |a| {
                for (measure, value) in
                    [(&codes::SYSTOLIC, systolic), (&codes::DIASTOLIC, diastolic)]
                {
                    a.object(|c| {
                        c.concept("code", codes::LOINC, measure.code, measure.display);
                        quantity(c, "valueQuantity", measure, value);
                    });
                }
            });
        });
    }

    /// Writes a lab result with its reference range and, outside it, an interpretation.
    pub fn lab(&mut self, visit: &Visit, measure: &Measure, time: i64, value: i64) {
        // Results come a few hours later, but not after the epoch.
        let issued = date_time((time + 3 * 3600).min(self.plan.epoch() - 1));
        self.observation(visit, true, (measure.code, measure.display), time, |o| {
            o.string("issued", &issued);
            quantity(o, "valueQuantity", measure, value);
            let Some((low, high)) = measure.range else {
                return;
            };
            let flag = if value < low {
                Some(("L", "Low"))
            } else if value > high {
                Some(("H", "High"))
            } else {
                None
            };
            if let Some((code, display)) = flag {
                o.array("interpretation", |a| {
                    a.object(|i| {
                        i.array("coding", |a| {
                            a.object(|c| {
                                c.coding(INTERPRETATION, code, display);
                            });
                        });
                    });
                });
            }
            o.array("referenceRange", |a| {
                a.object(|r| {
                    if low > 0 {
                        quantity(r, "low", measure, low);
                    }
                    quantity(r, "high", measure, high);
                });
            });
        });
    }

    /// Writes a Condition diagnosed in `visit`; returns its reference. Acute conditions are
    /// resolved a few weeks later, unless that is after the epoch.
    pub fn condition(
        &mut self,
        rng: &mut Rng,
        visit: &Visit,
        condition: &ConditionCode,
        chronic: bool,
    ) -> String {
        self.conditions += 1;
        let id = format!("cond-{:06}-{:02}", self.patient.index, self.conditions);
        let onset = visit.start - if chronic { 0 } else { rng.range(1, 5) * DAY };
        let onset = onset.max(self.patient.birth_day * DAY);
        let abatement = Some(visit.start + rng.range(7, 28) * DAY)
            .filter(|&abatement| !chronic && abatement < self.plan.epoch());
        let (category, category_display) = if chronic {
            ("problem-list-item", "Problem List Item")
        } else {
            ("encounter-diagnosis", "Encounter Diagnosis")
        };
        let clinical_status = if abatement.is_some() {
            "resolved"
        } else {
            "active"
        };
        self.out.write(Kind::Condition, |o| {
            o.string("id", &id)
                .object("clinicalStatus", |s| {
                    s.array("coding", |a| {
                        a.object(|c| {
                            c.string("system", CLINICAL_STATUS)
                                .string("code", clinical_status);
                        });
                    });
                })
                .object("verificationStatus", |s| {
                    s.array("coding", |a| {
                        a.object(|c| {
                            c.string("system", VERIFICATION_STATUS)
                                .string("code", "confirmed");
                        });
                    });
                })
                .categories("category", CONDITION_CATEGORY, category, category_display)
                .concept("code", codes::SNOMED, condition.code, condition.display)
                .reference("subject", &self.patient.reference)
                .reference("encounter", &visit.reference)
                .string("onsetDateTime", &date_time(onset));
            if let Some(abatement) = abatement {
                o.string("abatementDateTime", &date_time(abatement));
            }
            o.string("recordedDate", &date_time(visit.start));
        });
        format!("Condition/{id}")
    }

    /// Writes a MedicationRequest for `medication` (an index into [`codes::MEDICATIONS`])
    /// authored by the visit's practitioner for the condition `reason`.
    pub fn prescription(
        &mut self,
        rng: &mut Rng,
        visit: &Visit,
        medication: usize,
        reason: &str,
        chronic: bool,
    ) {
        self.medications += 1;
        let id = format!("med-{:06}-{:03}", self.patient.index, self.medications);
        let drug = &codes::MEDICATIONS[medication];
        let authored = (visit.start + rng.range(15, 40) * 60).min(visit.end);
        let status = if rng.chance(30) {
            "stopped"
        } else if chronic && authored > self.plan.epoch() - 365 * DAY {
            "active"
        } else {
            "completed"
        };
        self.out.write(Kind::MedicationRequest, |o| {
            o.string("id", &id)
                .string("status", status)
                .string("intent", "order")
                .concept(
                    "medicationCodeableConcept",
                    codes::RXNORM,
                    drug.code,
                    drug.display,
                )
                .reference("subject", &self.patient.reference)
                .reference("encounter", &visit.reference)
                .string("authoredOn", &date_time(authored))
                .reference("requester", &visit.practitioner)
                .array("reasonReference", |a| {
                    a.object(|r| {
                        r.string("reference", reason);
                    });
                })
                .array("dosageInstruction", |a| {
                    a.object(|d| {
                        d.integer("sequence", 1).string("text", drug.dosage).object(
                            "timing",
                            |t| {
                                t.object("repeat", |r| {
                                    r.integer("frequency", i64::from(drug.per_day))
                                        .integer("period", 1)
                                        .string("periodUnit", "d");
                                });
                            },
                        );
                    });
                });
        });
    }
}

/// Code systems used only here.
const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const CLINICAL_STATUS: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const VERIFICATION_STATUS: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";

/// `"key": {value, unit, system, code}`: a UCUM Quantity of `measure` for a value scaled by
/// its decimals. Negative values become 0: nothing measured here is negative.
fn quantity(o: &mut Object, key: &str, measure: &Measure, scaled: i64) {
    o.object(key, |q| {
        q.decimal("value", scaled.max(0), measure.decimals)
            .string("unit", measure.unit)
            .string("system", codes::UCUM)
            .string("code", measure.ucum);
    });
}
