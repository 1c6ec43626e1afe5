//! When each request of an open-loop run is due: the arrival schedules of `--rate R`
//! (`--arrivals uniform|poisson`). A closed-loop run (`--connections C` alone) has no schedule:
//! each connection sends its next request when the previous one is answered.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// Closed loop: every connection sends as soon as its previous request is answered.
    Closed,
    /// Open loop: `per_second` requests evenly spaced.
    Uniform { per_second: f64 },
    /// Open loop: a Poisson process of `per_second` (exponential gaps, as real users arrive).
    Poisson { per_second: f64 },
}

impl Arrivals {
    /// The offered rate, `None` for a closed loop.
    pub fn rate(&self) -> Option<f64> {
        match self {
            Arrivals::Closed => None,
            Arrivals::Uniform { per_second } | Arrivals::Poisson { per_second } => {
                Some(*per_second)
            }
        }
    }

    /// The same kind of arrivals at another rate (a closed loop stays closed).
    pub fn at_rate(&self, per_second: f64) -> Arrivals {
        match self {
            Arrivals::Closed => Arrivals::Closed,
            Arrivals::Uniform { .. } => Arrivals::Uniform { per_second },
            Arrivals::Poisson { .. } => Arrivals::Poisson { per_second },
        }
    }
}

/// The due times of one open-loop stream of requests, as offsets from the run's start. The
/// connections of a worker share one schedule: a free connection takes the next due time, so a
/// request that falls due while every connection is busy waits, and that wait is part of its
/// latency (latency is measured from the due time, never from the send: coordinated omission
/// corrected, as wrk2 and pgbench `-R` do).
#[derive(Debug)]
pub struct Schedule {
    gap: Gap,
    next_seconds: f64,
}

#[derive(Debug)]
enum Gap {
    Even(f64),
    Exponential(Exp<f64>, Box<SmallRng>),
}

impl Schedule {
    /// The schedule of `arrivals`, `None` for a closed loop or a rate that is not a positive
    /// finite number. `seed` makes a Poisson schedule repeatable.
    pub fn new(arrivals: Arrivals, seed: u64) -> Option<Schedule> {
        let gap = match arrivals {
            Arrivals::Closed => return None,
            Arrivals::Uniform { per_second } => {
                if !(per_second.is_finite() && per_second > 0.0) {
                    return None;
                }
                Gap::Even(1.0 / per_second)
            }
            Arrivals::Poisson { per_second } => Gap::Exponential(
                Exp::new(per_second)
                    .ok()
                    .filter(|_| per_second.is_finite() && per_second > 0.0)?,
                Box::new(SmallRng::seed_from_u64(seed)),
            ),
        };
        Some(Schedule {
            gap,
            next_seconds: 0.0,
        })
    }

    /// The next request's due time, from the run's start.
    pub fn next_due(&mut self) -> Duration {
        let due = self.next_seconds;
        self.next_seconds += match &mut self.gap {
            Gap::Even(gap) => *gap,
            Gap::Exponential(distribution, random) => distribution.sample(random.as_mut()),
        };
        Duration::from_secs_f64(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due_times(arrivals: Arrivals, count: usize) -> Vec<f64> {
        let mut schedule = Schedule::new(arrivals, 7).expect("an open loop");
        (0..count)
            .map(|_| schedule.next_due().as_secs_f64())
            .collect()
    }

    #[test]
    fn uniform_arrivals_are_evenly_spaced_at_the_rate() {
        let times = due_times(Arrivals::Uniform { per_second: 250.0 }, 1001);
        assert_eq!(times[0], 0.0);
        for pair in times.windows(2) {
            assert!((pair[1] - pair[0] - 0.004).abs() < 1e-9, "{pair:?}");
        }
        assert!((times[1000] - 4.0).abs() < 1e-6);
    }

    #[test]
    fn poisson_arrivals_average_the_rate_with_exponential_gaps() {
        let times = due_times(Arrivals::Poisson { per_second: 1000.0 }, 100_001);
        let mean_gap = times[100_000] / 100_000.0;
        assert!((mean_gap - 0.001).abs() < 0.00003, "mean gap {mean_gap}");
        let gaps: Vec<f64> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
        // An exponential gap exceeds its mean with probability 1/e.
        let longer = gaps.iter().filter(|gap| **gap > 0.001).count() as f64 / gaps.len() as f64;
        assert!((longer - (-1.0f64).exp()).abs() < 0.01, "{longer}");
        assert!(gaps.iter().all(|gap| *gap >= 0.0));
    }

    #[test]
    fn the_same_seed_gives_the_same_poisson_schedule() {
        let arrivals = Arrivals::Poisson { per_second: 50.0 };
        assert_eq!(due_times(arrivals, 100), due_times(arrivals, 100));
    }

    #[test]
    fn a_closed_loop_or_a_rate_that_is_not_positive_has_no_schedule() {
        assert!(Schedule::new(Arrivals::Closed, 1).is_none());
        for rate in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            assert!(Schedule::new(Arrivals::Uniform { per_second: rate }, 1).is_none());
            assert!(Schedule::new(Arrivals::Poisson { per_second: rate }, 1).is_none());
        }
    }
}
