//! The report: a markdown table (printed and written to `report.md`) and `report.json`.

use serde_json::{Map, Value, json};

use crate::figures::Figure;
use crate::metrics::{Cell, Metric};

/// What the report says about the run and the machine.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) date: String,
    pub(crate) mode: &'static str,
    pub(crate) machine: Vec<(&'static str, String)>,
}

/// A figure for a table: three significant digits, large rates in k/M/G, and the spread.
pub(crate) fn show(figure: &Figure, unit: &str) -> String {
    // Counts per second get a k/M/G prefix; GB/s and times are shown as they are.
    let count_rate = unit.ends_with("/s") && !unit.starts_with("GB");
    let (scaled, prefix) = match figure.value.abs() {
        v if count_rate && v >= 1e9 => (figure.value / 1e9, "G"),
        v if count_rate && v >= 1e6 => (figure.value / 1e6, "M"),
        v if count_rate && v >= 1e3 => (figure.value / 1e3, "k"),
        _ => (figure.value, ""),
    };
    let digits = match scaled.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    let unit = if unit == "x" {
        "x".to_string()
    } else {
        format!("{prefix} {unit}")
    };
    format!("{scaled:.digits$}{unit} ±{:.0}%", figure.spread_pct)
}

fn cell_text(cell: &Cell, unit: &str, named: bool) -> String {
    match &cell.figure {
        Ok(f) if named && !cell.name.is_empty() => format!("{} ({})", show(f, unit), cell.name),
        Ok(f) => show(f, unit),
        Err(_) => "–".to_string(),
    }
}

fn times(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.2}x"))
}

/// The main table, in markdown.
pub(crate) fn table(metrics: &[Metric]) -> String {
    let mut out = String::from(
        "| metric | mp | Python | best Rust peer | OS limit | mp vs Python | mp vs limit |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for m in metrics {
        out += &format!(
            "| {} (`{}`, {} is better) | {} | {} | {} | {} | {} | {} |\n",
            m.label,
            m.key,
            m.better.as_str(),
            cell_text(&m.mp, m.unit, false),
            cell_text(&m.python, m.unit, false),
            cell_text(&m.peer, m.unit, true),
            cell_text(&m.limit, m.unit, true),
            times(m.advantage(&m.python)),
            times(m.advantage(&m.limit)),
        );
    }
    out
}

/// Why each empty cell is empty.
fn missing(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        for (column, cell) in [
            ("mp", &m.mp),
            ("Python", &m.python),
            ("peer", &m.peer),
            ("limit", &m.limit),
        ] {
            if let Err(reason) = &cell.figure {
                out += &format!("- `{}`, {column}: {reason}\n", m.key);
            }
        }
    }
    out
}

/// The whole of `report.md`.
pub(crate) fn markdown(
    run: &Run,
    metrics: &[Metric],
    baselines: &[(&str, &str, Result<Figure, String>)],
) -> String {
    let flag = if run.mode == "quick" { " --quick" } else { "" };
    let mut out = format!(
        "# mp benchmark report\n\n`cargo xtask bench{flag}` ({} run), {}.\n\n",
        run.mode, run.date
    );
    for (k, v) in &run.machine {
        out += &format!("- {k}: {v}\n");
    }
    out += "\nEach figure is the median of repeated trials after a warm-up; `±` is the \
            interquartile range as a percentage of the median. \"mp vs X\" is how many times \
            better mp is (above 1: mp is faster; against the OS limit it is the share of the \
            limit mp reaches). Python runs multiprocessing with its default (fork) context.\n\n";
    out += &table(metrics);
    let missing = missing(metrics);
    if !missing.is_empty() {
        out += "\nNot measured:\n\n";
        out += &missing;
    }
    out += "\n## OS baselines of the same run\n\n| what | median |\n|---|---|\n";
    for (what, unit, figure) in baselines {
        let text = match figure {
            Ok(f) => show(f, unit),
            Err(e) => format!("– ({e})"),
        };
        out += &format!("| {what} | {text} |\n");
    }
    out
}

fn number(cell: &Cell) -> Value {
    cell.value().map_or(Value::Null, |v| json!(v))
}

/// `report.json`: `{"machine": {..}, "metrics": {"<key>": {"unit", "better", "mp", "python",
/// "peer", "limit", ..}}}`; an empty cell is `null`, with its reason under `"null_reasons"`.
pub(crate) fn json(
    run: &Run,
    metrics: &[Metric],
    baselines: &[(&str, &str, Result<Figure, String>)],
) -> Value {
    let mut machine = Map::new();
    for (k, v) in &run.machine {
        machine.insert((*k).to_string(), json!(v));
    }
    machine.insert("date".into(), json!(run.date));
    machine.insert("mode".into(), json!(run.mode));
    let mut all = Map::new();
    for m in metrics {
        let columns = [
            ("mp", &m.mp),
            ("python", &m.python),
            ("peer", &m.peer),
            ("limit", &m.limit),
        ];
        let mut reasons = Map::new();
        let mut spread = Map::new();
        let mut names = Map::new();
        for (column, cell) in columns {
            match &cell.figure {
                Ok(f) => {
                    spread.insert(column.into(), json!(f.spread_pct));
                }
                Err(reason) => {
                    reasons.insert(column.into(), json!(reason));
                }
            }
            if column != "mp" && !cell.name.is_empty() {
                names.insert(column.into(), json!(cell.name));
            }
        }
        all.insert(
            m.key.to_string(),
            json!({
                "label": m.label,
                "unit": m.unit,
                "better": m.better.as_str(),
                "mp": number(&m.mp),
                "python": number(&m.python),
                "peer": number(&m.peer),
                "limit": number(&m.limit),
                "mp_vs_python": m.advantage(&m.python),
                "mp_vs_limit": m.advantage(&m.limit),
                "spread_pct": spread,
                "names": names,
                "null_reasons": reasons,
            }),
        );
    }
    let baselines: Vec<Value> = baselines
        .iter()
        .map(|(what, unit, figure)| match figure {
            Ok(f) => {
                json!({"what": what, "unit": unit, "median": f.value, "spread_pct": f.spread_pct})
            }
            Err(e) => json!({"what": what, "unit": unit, "median": null, "null_reason": e}),
        })
        .collect();
    json!({"machine": machine, "metrics": all, "baselines": baselines})
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn figures_read_well() {
        let f = |value| Figure {
            value,
            spread_pct: 3.4,
        };
        assert_eq!(show(&f(46_900_000.0), "tasks/s"), "46.9M tasks/s ±3%");
        assert_eq!(show(&f(9.57), "us"), "9.57 us ±3%");
        assert_eq!(show(&f(2714.8), "us"), "2715 us ±3%");
        assert_eq!(show(&f(1.95), "x"), "1.95x ±3%");
        assert_eq!(show(&f(5.2), "GB/s"), "5.20 GB/s ±3%");
    }
}
