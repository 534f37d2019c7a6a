//! The report: figures with their goals, as a human table (comfy-table) and
//! as one flat JSON object (`key: number`) printed as the last line.
//!
//! It owns presentation only: the names, units and goals of figures and how
//! a goal is judged (at most / at least). "Ratio" is always oriented so that
//! ≥ 1.0 meets the goal: goal ÷ value for an "at most" goal, value ÷ goal
//! for an "at least" goal.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use serde_json::{Map, Number, Value};

/// How a goal is met.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// The value must be at most this (latencies, bytes).
    AtMost(f64),
    /// The value must be at least this (throughputs, ratios).
    AtLeast(f64),
}

impl Goal {
    /// ≥ 1.0 when met.
    pub fn ratio(self, value: f64) -> f64 {
        match self {
            Goal::AtMost(g) => g / value,
            Goal::AtLeast(g) => value / g,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Goal::AtMost(g) => format!("≤ {} {unit}", human(g)),
            Goal::AtLeast(g) => format!("≥ {} {unit}", human(g)),
        }
    }
}

/// One reported number.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The JSON key.
    pub key: &'static str,
    /// What was measured, for the table.
    pub what: String,
    /// The value (a median for timings).
    pub value: f64,
    /// Its unit, for the table.
    pub unit: &'static str,
    /// The goal from the issue, if it has one.
    pub goal: Option<Goal>,
}

/// The figures of one run, in the order measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    figures: Vec<Figure>,
    /// Words beside the figures (how they were measured), JSON only.
    notes: Vec<(&'static str, String)>,
}

impl Report {
    /// Adds a figure with a goal.
    pub fn goal(
        &mut self,
        key: &'static str,
        what: impl Into<String>,
        value: f64,
        unit: &'static str,
        goal: Goal,
    ) {
        self.push(key, what, value, unit, Some(goal));
    }

    /// Adds a figure without a goal (context, variants, sizes).
    pub fn info(
        &mut self,
        key: &'static str,
        what: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) {
        self.push(key, what, value, unit, None);
    }

    fn push(
        &mut self,
        key: &'static str,
        what: impl Into<String>,
        value: f64,
        unit: &'static str,
        goal: Option<Goal>,
    ) {
        self.figures.push(Figure {
            key,
            what: what.into(),
            value,
            unit,
            goal,
        });
    }

    /// Adds a word about how the figures were measured (a JSON string).
    pub fn note(&mut self, key: &'static str, value: impl Into<String>) {
        self.notes.push((key, value.into()));
    }

    /// The notes so far.
    pub fn notes(&self) -> &[(&'static str, String)] {
        &self.notes
    }

    /// The figures so far.
    pub fn figures(&self) -> &[Figure] {
        &self.figures
    }

    /// The value of `key`, if reported.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.figures.iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(["figure", "key", "value", "goal", "ratio", "verdict"]);
        for f in &self.figures {
            let (goal, ratio, verdict) = match f.goal {
                Some(g) => {
                    let r = g.ratio(f.value);
                    let verdict = if r >= 1.0 { "meets" } else { "MISSES" };
                    (g.describe(f.unit), format!("{r:.2}"), verdict.to_string())
                }
                None => (String::new(), String::new(), String::new()),
            };
            t.add_row([
                Cell::new(&f.what),
                Cell::new(f.key),
                Cell::new(format!("{} {}", human(f.value), f.unit))
                    .set_alignment(CellAlignment::Right),
                Cell::new(goal),
                Cell::new(ratio).set_alignment(CellAlignment::Right),
                Cell::new(verdict),
            ]);
        }
        t.to_string()
    }

    /// The flat JSON object: every key with its value (non-finite values,
    /// which a correct run never produces, become `null`).
    pub fn json(&self, extra: &[(&str, Value)]) -> Value {
        let mut m = Map::new();
        for f in &self.figures {
            let v = Number::from_f64(round_sig(f.value)).map_or(Value::Null, Value::Number);
            m.insert(f.key.to_string(), v);
        }
        for (k, v) in &self.notes {
            m.insert((*k).to_string(), Value::String(v.clone()));
        }
        for (k, v) in extra {
            m.insert((*k).to_string(), v.clone());
        }
        Value::Object(m)
    }
}

/// Makes the `keys` of a [`Report::json`] object integers (counts are
/// reported as `f64` figures, but read as whole numbers).
pub fn counts_as_integers(j: &mut Value, keys: &[&str]) {
    for k in keys {
        if let Some(v) = j.get(*k).and_then(Value::as_f64) {
            j[*k] = Value::from(v as u64);
        }
    }
}

/// Rounds to 4 significant digits (JSON readers need no more from a
/// median on a noisy machine).
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(3 - mag);
    (v * scale).round() / scale
}

/// A compact human number: 12.3, 1.23k, 4.56M.
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_oriented_so_that_one_meets() {
        assert_eq!(Goal::AtMost(40.0).ratio(20.0), 2.0);
        assert_eq!(Goal::AtMost(40.0).ratio(80.0), 0.5);
        assert_eq!(Goal::AtLeast(10.0).ratio(20.0), 2.0);
    }

    #[test]
    fn json_is_flat_and_rounded() {
        let mut r = Report::default();
        r.goal("a_ns", "a", 12.345_678, "ns", Goal::AtMost(40.0));
        r.info("n", "n", 1_000_000.0, "");
        let j = r.json(&[("quick", Value::Bool(true))]);
        assert_eq!(j["a_ns"].as_f64(), Some(12.35));
        assert_eq!(j["n"].as_f64(), Some(1_000_000.0));
        assert_eq!(j["quick"], Value::Bool(true));
        let mut j = j;
        counts_as_integers(&mut j, &["n", "absent"]);
        assert_eq!(j["n"].as_u64(), Some(1_000_000));
        assert!(r.table().contains("meets"));
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(12.345), "12.35");
        assert_eq!(human(12_345.0), "12.3k");
        assert_eq!(human(12_345_678.0), "12.35M");
    }
}
