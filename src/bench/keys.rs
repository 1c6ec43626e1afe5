//! Which record a request names (`--keys uniform|zipfian|latest`, YCSB's request
//! distributions): any record alike; a few hot records and a long tail (zipfian, constant 0.99,
//! with the hot ranks scattered over the key space as YCSB's scrambled zipfian does); or the
//! records inserted last the hottest (latest, YCSB's workload D).

use rand::Rng;
use rand_distr::{Distribution, Zipf};

/// YCSB's zipfian constant.
const ZIPFIAN_CONSTANT: f64 = 0.99;

/// A key distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    Uniform,
    Zipfian,
    Latest,
}

impl std::str::FromStr for KeyChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "uniform" => Ok(KeyChoice::Uniform),
            "zipfian" => Ok(KeyChoice::Zipfian),
            "latest" => Ok(KeyChoice::Latest),
            other => Err(format!(
                "unknown key distribution '{other}' (uniform, zipfian or latest)"
            )),
        }
    }
}

impl KeyChoice {
    pub fn name(&self) -> &'static str {
        match self {
            KeyChoice::Uniform => "uniform",
            KeyChoice::Zipfian => "zipfian",
            KeyChoice::Latest => "latest",
        }
    }
}

/// Picks positions in a key space of `count` keys ordered from oldest to newest; `None` when
/// it is empty. The zipfian distribution over `count` keys is rebuilt only when `count` changes.
#[derive(Debug)]
pub struct KeyPicker {
    choice: KeyChoice,
    zipf: Option<(u64, Zipf<f64>)>,
}

impl KeyPicker {
    pub fn new(choice: KeyChoice) -> KeyPicker {
        KeyPicker { choice, zipf: None }
    }

    /// A position in `0..count`.
    pub fn pick(&mut self, count: usize, random: &mut impl Rng) -> Option<usize> {
        if count == 0 {
            return None;
        }
        let position = match self.choice {
            KeyChoice::Uniform => random.gen_range(0..count),
            KeyChoice::Zipfian => {
                let rank = self.zipf_rank(count, random)?;
                scatter(rank) % count
            }
            KeyChoice::Latest => count - 1 - self.zipf_rank(count, random)?,
        };
        Some(position)
    }

    /// A zipfian rank in `0..count` (0 the most frequent).
    fn zipf_rank(&mut self, count: usize, random: &mut impl Rng) -> Option<usize> {
        let keys = u64::try_from(count).ok()?;
        let stale = self.zipf.as_ref().is_none_or(|(known, _)| *known != keys);
        if stale {
            // `Zipf::new` refuses only n = 0 and a negative or NaN constant, none of which
            // can happen here (count > 0 was checked by `pick`).
            self.zipf = Some((keys, Zipf::new(keys, ZIPFIAN_CONSTANT).ok()?));
        }
        let (_, zipf) = self.zipf.as_ref()?;
        // A sample is a whole number in 1..=keys, so the conversion is exact.
        let rank = zipf.sample(random).max(1.0) as u64 - 1;
        usize::try_from(rank.min(keys - 1)).ok()
    }
}

/// Spreads consecutive ranks over the key space (FNV-1a of the rank), so that the hot keys of
/// a zipfian run are not the oldest records side by side.
fn scatter(rank: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in rank.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // On 64-bit targets usize is u64; elsewhere the truncation is still a uniform hash.
    hash as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn histogram(choice: KeyChoice, count: usize, draws: usize) -> Vec<usize> {
        let mut picker = KeyPicker::new(choice);
        let mut random = SmallRng::seed_from_u64(3);
        let mut hits = vec![0; count];
        for _ in 0..draws {
            hits[picker.pick(count, &mut random).expect("keys")] += 1;
        }
        hits
    }

    #[test]
    fn uniform_keys_are_all_about_as_frequent() {
        let hits = histogram(KeyChoice::Uniform, 100, 100_000);
        assert!(hits.iter().all(|hit| (800..1200).contains(hit)), "{hits:?}");
    }

    #[test]
    fn zipfian_keys_have_a_few_hot_ones_scattered_over_the_space() {
        let hits = histogram(KeyChoice::Zipfian, 1000, 200_000);
        let mut sorted = hits.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let hottest_tenth: usize = sorted[..100].iter().sum();
        assert!(
            hottest_tenth > 120_000,
            "the hottest 10 % draw {hottest_tenth}"
        );
        let hottest = hits
            .iter()
            .position(|hit| *hit == sorted[0])
            .expect("a max");
        assert_ne!(hottest, 0, "hot keys are scattered, not the first");
    }

    #[test]
    fn latest_keys_favour_the_newest() {
        let hits = histogram(KeyChoice::Latest, 1000, 100_000);
        assert!(hits[999] > hits[500] * 50, "{} vs {}", hits[999], hits[500]);
        assert!(hits[999] >= *hits.iter().max().expect("a max"));
    }

    #[test]
    fn an_empty_key_space_has_no_key_and_a_growing_one_is_followed() {
        let mut picker = KeyPicker::new(KeyChoice::Latest);
        let mut random = SmallRng::seed_from_u64(1);
        assert_eq!(picker.pick(0, &mut random), None);
        assert_eq!(picker.pick(1, &mut random), Some(0));
        for count in 2..50 {
            assert!(picker.pick(count, &mut random).expect("a key") < count);
        }
    }

    #[test]
    fn key_distributions_are_named() {
        assert_eq!("zipfian".parse::<KeyChoice>(), Ok(KeyChoice::Zipfian));
        assert!("pareto".parse::<KeyChoice>().is_err());
    }
}
