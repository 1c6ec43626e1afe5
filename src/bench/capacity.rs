//! `tabula bench capacity`: the highest offered rate this server holds within an SLO. Steps of
//! open-loop load double from a starting rate until one breaks the SLO, the error budget or
//! falls short of its offered rate; then a binary search between the last rate that held and
//! the first that broke narrows the answer to `precision` (5 % by default). Every step's
//! figures are kept for the report and the chart.

use serde::Serialize;

use super::recorder::Percentiles;

/// How the search runs.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    /// The first offered rate, requests per second.
    pub start_rate: f64,
    /// The search stops when the interval between a held and a broken rate is narrower than
    /// this share of the held rate.
    pub precision: f64,
    /// The most steps it runs.
    pub max_steps: usize,
    /// A step holds only when the server answered at least this share of the offered rate.
    pub min_delivered: f64,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            start_rate: 100.0,
            precision: 0.05,
            max_steps: 24,
            min_delivered: 0.95,
        }
    }
}

/// One measured step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The rate offered, requests per second.
    pub offered: f64,
    /// The rate answered, requests per second.
    pub achieved: f64,
    pub latency: Percentiles,
    pub error_rate: f64,
    /// Whether the step met the SLO, the error budget and its offered rate.
    pub held: bool,
    /// Why it did not hold, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broke: Option<String>,
}

/// The search's answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// The highest offered rate that held; `None` when even the lowest one tried broke.
    pub rate: Option<f64>,
    /// The lowest offered rate that broke; `None` when the search ran out of steps first.
    pub broke_at: Option<f64>,
    pub steps: Vec<Step>,
}

/// Finds the capacity with `run_step(rate)`, which measures one step at an offered rate (its
/// `held` already judged). An error of `run_step` ends the search with that error.
pub fn find_capacity(
    search: &Search,
    mut run_step: impl FnMut(f64) -> Result<Step, String>,
) -> Result<Capacity, String> {
    let mut steps = Vec::new();
    let mut held: Option<f64> = None;
    let mut broke: Option<f64> = None;
    let mut rate = search.start_rate.max(1.0);
    // Coarse: double while it holds; halve while even the start breaks.
    while steps.len() < search.max_steps {
        let step = run_step(rate)?;
        let ok = step.held;
        steps.push(step);
        if ok {
            held = Some(rate);
            if broke.is_some() {
                break;
            }
            rate *= 2.0;
        } else {
            broke = Some(rate);
            if held.is_some() {
                break;
            }
            if rate <= 1.0 {
                return Ok(Capacity {
                    rate: None,
                    broke_at: broke,
                    steps,
                });
            }
            rate = (rate / 2.0).max(1.0);
        }
    }
    // Fine: bisect between the highest rate that held and the lowest that broke.
    while steps.len() < search.max_steps {
        let (Some(low), Some(high)) = (held, broke) else {
            break;
        };
        if high - low <= low * search.precision {
            break;
        }
        let middle = (low + high) / 2.0;
        let step = run_step(middle)?;
        if step.held {
            held = Some(middle);
        } else {
            broke = Some(middle);
        }
        steps.push(step);
    }
    Ok(Capacity {
        rate: held,
        broke_at: broke,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated server whose p99 is 2 ms up to its knee and 100 ms past it.
    fn server_with_knee(knee: f64) -> impl FnMut(f64) -> Result<Step, String> {
        move |offered| {
            let held = offered <= knee;
            Ok(Step {
                offered,
                achieved: offered.min(knee),
                latency: Percentiles {
                    p99_ms: if held { 2.0 } else { 100.0 },
                    ..Percentiles::default()
                },
                error_rate: 0.0,
                held,
                broke: (!held).then(|| "p99<=10ms".to_string()),
            })
        }
    }

    #[test]
    fn the_search_finds_a_known_knee_within_one_step() {
        let search = Search::default();
        for knee in [150.0, 7_300.0, 41_000.0, 99.0, 100.0, 3.5] {
            let capacity = find_capacity(&search, server_with_knee(knee)).expect("runs");
            let found = capacity.rate.expect("a rate held");
            assert!(found <= knee, "knee {knee}: found {found}");
            assert!(
                found >= knee * (1.0 - search.precision),
                "knee {knee}: found {found} in {:?}",
                capacity.steps.iter().map(|s| s.offered).collect::<Vec<_>>()
            );
            let broke = capacity.broke_at.expect("a rate broke");
            assert!(broke > knee && broke - found <= found * search.precision);
            assert!(capacity.steps.len() <= search.max_steps);
        }
    }

    #[test]
    fn a_server_that_holds_nothing_has_no_capacity() {
        let capacity = find_capacity(&Search::default(), server_with_knee(0.5)).expect("runs");
        assert_eq!(capacity.rate, None);
        assert_eq!(capacity.steps.last().map(|step| step.offered), Some(1.0));
    }

    #[test]
    fn the_search_stops_at_its_step_budget_and_reports_what_held() {
        let search = Search {
            max_steps: 3,
            ..Search::default()
        };
        let capacity = find_capacity(&search, server_with_knee(1e12)).expect("runs");
        assert_eq!(capacity.steps.len(), 3);
        assert_eq!(capacity.rate, Some(400.0));
        assert_eq!(capacity.broke_at, None);
    }

    #[test]
    fn a_failing_step_ends_the_search_with_its_error() {
        let outcome = find_capacity(&Search::default(), |_| Err("server gone".to_string()));
        assert_eq!(outcome.err().as_deref(), Some("server gone"));
    }
}
