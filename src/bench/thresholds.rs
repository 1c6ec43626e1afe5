//! Pass/fail conditions on a run's figures, k6-style: `--threshold 'p99<20ms'`,
//! `--threshold 'errors<1%'`, `--threshold 'throughput>=5000'`, and the SLO of
//! `tabula bench capacity --slo 'p99<=10ms'` (a latency condition).

use std::fmt;

use super::recorder::Percentiles;

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A latency percentile (`p50`, `p90`, `p99`, `p99.9`, `max`, `mean`), in milliseconds.
    Latency(String),
    /// The share of requests that were errors, in percent.
    Errors,
    /// Requests answered per second (2xx or not).
    Throughput,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Below,
    AtMost,
    Above,
    AtLeast,
}

/// One condition: `metric comparison value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub comparison: Comparison,
    /// Milliseconds for a latency, percent for errors, requests per second for throughput.
    pub value: f64,
    text: String,
}

/// The figures a condition is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub percentiles: Percentiles,
    pub error_rate: f64,
    pub throughput: f64,
}

impl Threshold {
    /// The figure this condition looks at, in its unit.
    pub fn observed(&self, figures: &Figures) -> f64 {
        match &self.metric {
            Metric::Latency(name) => figures.percentiles.named(name).unwrap_or(f64::NAN),
            Metric::Errors => figures.error_rate * 100.0,
            Metric::Throughput => figures.throughput,
        }
    }

    /// Whether `figures` meet the condition.
    pub fn holds(&self, figures: &Figures) -> bool {
        let observed = self.observed(figures);
        match self.comparison {
            Comparison::Below => observed < self.value,
            Comparison::AtMost => observed <= self.value,
            Comparison::Above => observed > self.value,
            Comparison::AtLeast => observed >= self.value,
        }
    }

    /// Whether this is a latency condition (an SLO must be one).
    pub fn is_latency(&self) -> bool {
        matches!(self.metric, Metric::Latency(_))
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(written: &str) -> Result<Self, Self::Err> {
        let text: String = written.chars().filter(|c| !c.is_whitespace()).collect();
        let invalid = |why: &str| {
            format!(
                "invalid threshold '{written}': {why} (examples: 'p99<20ms', 'p99.9<=1s', 'errors<1%', 'throughput>=5000')"
            )
        };
        let split = text
            .find(['<', '>'])
            .ok_or_else(|| invalid("no comparison (<, <=, > or >=)"))?;
        let (name, rest) = text.split_at(split);
        let (comparison, value) = if let Some(value) = rest.strip_prefix("<=") {
            (Comparison::AtMost, value)
        } else if let Some(value) = rest.strip_prefix(">=") {
            (Comparison::AtLeast, value)
        } else if let Some(value) = rest.strip_prefix('<') {
            (Comparison::Below, value)
        } else if let Some(value) = rest.strip_prefix('>') {
            (Comparison::Above, value)
        } else {
            return Err(invalid("no comparison"));
        };
        let number = |digits: &str| {
            digits
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite() && *number >= 0.0)
                .ok_or_else(|| invalid("the value is not a non-negative number"))
        };
        let lower = name.to_ascii_lowercase();
        let (metric, value) = match lower.as_str() {
            "errors" | "error_rate" => {
                let percent = value
                    .strip_suffix('%')
                    .ok_or_else(|| invalid("an error rate is a percentage, like 1%"))?;
                (Metric::Errors, number(percent)?)
            }
            "throughput" | "rps" => (Metric::Throughput, number(value)?),
            latency if Percentiles::default().named(latency).is_some() => {
                let milliseconds = if let Some(digits) = value.strip_suffix("ms") {
                    number(digits)?
                } else if let Some(digits) = value.strip_suffix("us") {
                    number(digits)? / 1000.0
                } else if let Some(digits) = value.strip_suffix('s') {
                    number(digits)? * 1000.0
                } else {
                    return Err(invalid("a latency has a unit: us, ms or s"));
                };
                (Metric::Latency(latency.to_string()), milliseconds)
            }
            "" => return Err(invalid("no metric")),
            other => {
                return Err(invalid(&format!(
                    "unknown metric '{other}' (p50, p90, p99, p99.9, max, mean, errors, throughput)"
                )))
            }
        };
        Ok(Threshold {
            metric,
            comparison,
            value,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(p99_ms: f64, error_rate: f64, throughput: f64) -> Figures {
        Figures {
            percentiles: Percentiles {
                p99_ms,
                ..Percentiles::default()
            },
            error_rate,
            throughput,
        }
    }

    #[test]
    fn latency_error_and_throughput_conditions_are_read_and_checked() {
        let p99: Threshold = "p99 < 20ms".parse().expect("valid");
        assert!(p99.is_latency());
        assert!(p99.holds(&figures(19.9, 0.0, 0.0)));
        assert!(!p99.holds(&figures(20.0, 0.0, 0.0)));
        let at_most: Threshold = "p99<=1s".parse().expect("valid");
        assert_eq!(at_most.value, 1000.0);
        assert!(at_most.holds(&figures(1000.0, 0.0, 0.0)));
        let micros: Threshold = "p99<500us".parse().expect("valid");
        assert_eq!(micros.value, 0.5);
        let errors: Threshold = "errors<1%".parse().expect("valid");
        assert!(errors.holds(&figures(0.0, 0.0099, 0.0)));
        assert!(!errors.holds(&figures(0.0, 0.01, 0.0)));
        let throughput: Threshold = "throughput>=5000".parse().expect("valid");
        assert!(throughput.holds(&figures(0.0, 0.0, 5000.0)));
        assert!(!throughput.holds(&figures(0.0, 0.0, 4999.0)));
        assert_eq!(throughput.to_string(), "throughput>=5000");
        let p999: Threshold = "p99.9<=50ms".parse().expect("valid");
        assert_eq!(p999.metric, Metric::Latency("p99.9".into()));
    }

    #[test]
    fn a_malformed_condition_is_refused_with_what_is_wrong() {
        for (text, why) in [
            ("p99", "no comparison"),
            ("p99<20", "a latency has a unit"),
            ("p98<20ms", "unknown metric 'p98'"),
            ("errors<1", "a percentage"),
            ("p99<-3ms", "non-negative number"),
            ("p99<fastms", "non-negative number"),
            ("<3ms", "no metric"),
            ("p99=3ms", "no comparison"),
        ] {
            let error = text.parse::<Threshold>().expect_err(text);
            assert!(error.contains(why), "{text}: {error}");
            assert!(error.contains(text), "{text}: {error}");
        }
    }
}
