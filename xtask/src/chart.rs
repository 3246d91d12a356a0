//! `chart.png`: per metric, the speed of Python, the best Rust peer and the OS limit relative
//! to mp's (mp = 1, higher is faster), as horizontal bars on a log scale. Figures in different
//! units can share one axis only this way.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::metrics::Metric;

const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Registers the first font found as "sans-serif"; false if none is installed (the chart is
/// then drawn without text).
fn register_font() -> bool {
    FONT_FILES.iter().any(|path| {
        std::fs::read(path).ok().is_some_and(|bytes| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes.leak()).is_ok()
        })
    })
}

const SERIES: [(&str, RGBColor); 4] = [
    ("mp", RGBColor(0xd9, 0x5f, 0x02)),
    ("Python", RGBColor(0x1f, 0x77, 0xb4)),
    ("best Rust peer", RGBColor(0x66, 0x66, 0x66)),
    ("OS limit", RGBColor(0x2c, 0xa0, 0x2c)),
];

/// Speeds relative to mp's, per series, for one metric.
fn relative(m: &Metric) -> [Option<f64>; 4] {
    let advantage = |c| m.advantage(c).map(|a| 1.0 / a);
    [
        m.mp.value().map(|_| 1.0),
        advantage(&m.python),
        advantage(&m.peer),
        advantage(&m.limit),
    ]
}

pub(crate) fn draw(path: &Path, metrics: &[Metric], title: &str) -> Result<(), String> {
    let with_text = register_font();
    if !with_text {
        println!("chart.png has no text: none of {FONT_FILES:?} is installed");
    }
    let rows: Vec<(&Metric, [Option<f64>; 4])> = metrics.iter().map(|m| (m, relative(m))).collect();
    let values = rows.iter().flat_map(|(_, r)| r.iter().flatten().copied());
    let (lo, hi) = values.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil().max(1.0)),
    );

    let (width, row_h, top, left, right) = (1600i32, 64i32, 110i32, 600i32, 40i32);
    let height = top + row_h * rows.len() as i32 + 60;
    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let x_of = |v: f64| {
        let t = (v.log10() - lo.log10()) / (hi.log10() - lo.log10());
        left + (t * f64::from(width - left - right)) as i32
    };
    let font = |size| ("sans-serif", size).into_font();
    let text = |s: &str, at: (i32, i32), size: u32, color: &RGBColor| {
        if with_text {
            root.draw(&Text::new(s.to_string(), at, font(size).color(color)))
                .map_err(err)
        } else {
            Ok(())
        }
    };

    text(title, (20, 15), 22, &BLACK)?;
    text(
        "speed relative to mp (mp = 1; longer is faster; log scale)",
        (20, 45),
        16,
        &RGBColor(80, 80, 80),
    )?;
    for (i, (name, color)) in SERIES.iter().enumerate() {
        let x = left + i as i32 * 190;
        root.draw(&Rectangle::new([(x, 75), (x + 16, 91)], color.filled()))
            .map_err(err)?;
        text(name, (x + 22, 75), 16, &BLACK)?;
    }
    // Decades, with mp's line at 1 drawn darker.
    let mut decade = lo;
    while decade <= hi * 1.0001 {
        let x = x_of(decade);
        let shade = if (decade - 1.0).abs() < 1e-9 { 0 } else { 210 };
        root.draw(&PathElement::new(
            vec![(x, top - 5), (x, height - 45)],
            RGBColor(shade, shade, shade).stroke_width(1),
        ))
        .map_err(err)?;
        let label = if decade >= 1.0 {
            format!("{decade:.0}x")
        } else {
            format!("{decade}x")
        };
        text(&label, (x - 12, height - 38), 14, &BLACK)?;
        decade *= 10.0;
    }
    for (i, (m, rel)) in rows.iter().enumerate() {
        let y0 = top + i as i32 * row_h;
        text(m.label, (10, y0 + 8), 15, &BLACK)?;
        let detail = format!("{} ({}, {} is better)", m.key, m.unit, m.better.as_str());
        text(&detail, (10, y0 + 30), 13, &RGBColor(100, 100, 100))?;
        for (j, (v, (_, color))) in rel.iter().zip(SERIES).enumerate() {
            let y = y0 + 4 + j as i32 * 14;
            match v {
                Some(v) => root
                    .draw(&Rectangle::new(
                        [(left, y), (x_of(*v).max(left + 1), y + 11)],
                        color.filled(),
                    ))
                    .map_err(err)?,
                None => text("n/a", (left + 4, y - 1), 11, &RGBColor(150, 150, 150))?,
            }
        }
    }
    root.present().map_err(err)
}
