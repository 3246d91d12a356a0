//! Where figures come from: criterion's samples of this run, and the Python scripts' lines.

use std::collections::HashMap;
use std::path::Path;

/// A median and its spread: the interquartile range as a percentage of the median.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Figure {
    pub(crate) value: f64,
    pub(crate) spread_pct: f64,
}

impl Figure {
    pub(crate) fn map(self, f: impl Fn(f64) -> f64) -> Figure {
        Figure {
            value: f(self.value),
            spread_pct: self.spread_pct,
        }
    }

    /// `self / other`; the relative spreads add up.
    pub(crate) fn ratio(self, other: Figure) -> Option<Figure> {
        (other.value > 0.0).then(|| Figure {
            value: self.value / other.value,
            spread_pct: self.spread_pct + other.spread_pct,
        })
    }
}

/// The median and spread of `samples`.
pub(crate) fn summarise(samples: &mut [f64]) -> Option<Figure> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        // Linear interpolation between closest ranks, as Python's "inclusive" quantiles.
        let pos = q * (samples.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        samples[lo] + (samples[hi] - samples[lo]) * (pos - lo as f64)
    };
    let median = at(0.5);
    let spread_pct = if median != 0.0 {
        (at(0.75) - at(0.25)).abs() / median.abs() * 100.0
    } else {
        0.0
    };
    Some(Figure {
        value: median,
        spread_pct,
    })
}

/// Nanoseconds per iteration of one criterion benchmark of this run, from its samples
/// (`target/criterion/<group>/<name>/new/sample.json`: total times and iteration counts).
pub(crate) fn criterion_ns(root: &Path, group: &str, name: &str) -> Option<Figure> {
    let path = root
        .join("target/criterion")
        .join(group)
        .join(name)
        .join("new/sample.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let iters = json.get("iters")?.as_array()?;
    let times = json.get("times")?.as_array()?;
    let mut per_iter: Vec<f64> = iters
        .iter()
        .zip(times)
        .filter_map(|(n, t)| Some(t.as_f64()? / n.as_f64()?))
        .collect();
    summarise(&mut per_iter)
}

/// Parses a comparison script's output: `<key> <median> [<spread_%>]` lines; others are
/// ignored.
pub(crate) fn parse_lines(stdout: &str) -> HashMap<String, Figure> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?;
            let value = words.next()?.parse().ok()?;
            let spread_pct = words.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
            Some((key.to_string(), Figure { value, spread_pct }))
        })
        .collect()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn median_and_interquartile_spread() {
        let f = summarise(&mut [4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!(f.value, 3.0);
        assert!((f.spread_pct - 2.0 / 3.0 * 100.0).abs() < 1e-9);
        assert_eq!(summarise(&mut []), None);
        assert_eq!(summarise(&mut [7.0]).unwrap().spread_pct, 0.0);
    }

    #[test]
    fn script_lines() {
        let figures = parse_lines("fork 2714.8 11.4\nnoise\nspawn 7e4\nbad x 1\n");
        assert_eq!(figures["fork"].value, 2714.8);
        assert_eq!(figures["fork"].spread_pct, 11.4);
        assert_eq!(figures["spawn"].spread_pct, 0.0);
        assert_eq!(figures.len(), 2);
    }

    #[test]
    fn ratios_add_spreads() {
        let a = Figure {
            value: 6.0,
            spread_pct: 1.0,
        };
        let b = Figure {
            value: 3.0,
            spread_pct: 2.0,
        };
        assert_eq!(
            a.ratio(b),
            Some(Figure {
                value: 2.0,
                spread_pct: 3.0
            })
        );
        assert_eq!(
            a.ratio(Figure {
                value: 0.0,
                spread_pct: 0.0
            }),
            None
        );
    }
}
