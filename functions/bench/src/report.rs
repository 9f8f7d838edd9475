//! What a scenario measured: medians of its runs, its baseline's, their ratio and the target,
//! printed as one Markdown table and one JSON document.

use serde::Serialize;

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The scenario's number in the table.
    pub scenario: u8,
    pub name: String,
    /// What was measured and in which unit, e.g. `MB/s` or `ms`.
    pub metric: String,
    pub unit: String,
    /// The median of the runs.
    pub measured: f64,
    pub baseline: Option<Baseline>,
    /// The target as the issue states it, e.g. `≥ 4× aws s3 cp`.
    pub target: String,
    /// Whether the target is met; None when the row only informs.
    pub met: Option<bool>,
    pub runs: usize,
}

impl Row {
    /// A figure of `runs` runs with neither baseline nor target.
    pub fn figure(
        scenario: u8,
        name: &str,
        metric: impl Into<String>,
        unit: &str,
        measured: f64,
        runs: usize,
    ) -> Row {
        Row {
            scenario,
            name: name.to_owned(),
            metric: metric.into(),
            unit: unit.to_owned(),
            measured,
            baseline: None,
            target: "-".to_owned(),
            met: None,
            runs,
        }
    }

    /// The figure beside its baseline's.
    pub fn versus(self, baseline: Baseline) -> Row {
        Row {
            baseline: Some(baseline),
            ..self
        }
    }

    /// The figure held against `target`, met or not.
    pub fn against(self, target: &str, met: bool) -> Row {
        Row {
            target: target.to_owned(),
            met: Some(met),
            ..self
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub name: String,
    /// The baseline's median, in the row's unit.
    pub measured: f64,
    /// measured ÷ baseline (for throughputs) or baseline ÷ measured (for times and counts):
    /// always "how many times better slipway is".
    pub ratio: f64,
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// The value at `quantile` (0..=1) of `samples`, nearest rank.
pub fn percentile(samples: &[f64], quantile: f64) -> f64 {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn number(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The report as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| # | scenario | metric | slipway | baseline | ratio | target | met | runs |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        let (baseline, ratio) = match &row.baseline {
            Some(b) => (
                format!("{} {} ({})", number(b.measured), row.unit, b.name),
                format!("{}×", number(b.ratio)),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} {} | {} | {} | {} | {} | {} |\n",
            row.scenario,
            row.name,
            row.metric,
            number(row.measured),
            row.unit,
            baseline,
            ratio,
            row.target,
            met,
            row.runs
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles_follow_their_definitions() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&samples, 1.0), 100.0);
    }

    #[test]
    fn the_table_shows_baselines_ratios_and_misses() {
        let rows = [Row {
            scenario: 1,
            name: "Publish".into(),
            metric: "throughput".into(),
            unit: "MB/s".into(),
            measured: 120.0,
            baseline: Some(Baseline {
                name: "aws s3 cp".into(),
                measured: 20.0,
                ratio: 6.0,
            }),
            target: "≥ 4×".into(),
            met: Some(false),
            runs: 5,
        }];
        let table = markdown(&rows);
        assert!(table.contains("| 1 | Publish | throughput | 120 MB/s | 20.0 MB/s (aws s3 cp) | 6.00× | ≥ 4× | **no** | 5 |"), "{table}");
    }
}
