//! A line chart as SVG text, for the figures a scenario measured against a size (a logarithmic
//! axis of sizes, a linear axis of values from 0).

use std::fmt::Write as _;

/// One line: its label and its points (size, value).
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#7f7f7f",
];

/// The chart titled `title`, sizes along `x_label` (logarithmic), values along `y_label`.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let (lo, hi) = points().fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| {
        (lo.min(x.log10()), hi.max(x.log10()))
    });
    let (lo, hi) = if lo < hi {
        (lo, hi)
    } else {
        (lo - 1.0, lo + 1.0)
    };
    let top = nice(points().fold(0.0f64, |m, &(_, y)| m.max(y)) * 1.05);
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x.log10() - lo) / (hi - lo) * w;
    let py = |y: f64| TOP + h - y / top * h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>
<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>
"#,
        LEFT + w / 2.0,
        escape(title),
        TOP + h,
        LEFT + w,
        TOP + h,
        TOP + h,
        LEFT + w / 2.0,
        HEIGHT - 10.0,
        escape(x_label),
        TOP + h / 2.0,
        TOP + h / 2.0,
        escape(y_label),
    );
    // The sizes measured, on the axis.
    let mut sizes: Vec<f64> = points().map(|&(x, _)| x).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    for x in sizes {
        let _ = writeln!(
            svg,
            r#"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="black"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"#,
            px(x),
            TOP + h,
            TOP + h + 5.0,
            TOP + h + 20.0,
            short(x),
        );
    }
    for i in 0..=5 {
        let y = top * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            py(y),
            LEFT + w,
            LEFT - 6.0,
            py(y) + 4.0,
            short(y),
        );
    }
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let line: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            line.join(" ")
        );
        for &(x, y) in &s.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                px(x),
                py(y)
            );
        }
        let ly = TOP + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{colour}" stroke-width="2"/><text x="{3}" y="{4}">{5}</text>"#,
            LEFT + w + 10.0,
            ly,
            LEFT + w + 28.0,
            LEFT + w + 32.0,
            ly + 4.0,
            escape(&s.label),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The axis's top: the least of 1, 2, 2.5, 5 (times a power of 10) at or above `v`, so that
/// its fifths are round.
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let unit = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * unit)
        .find(|&t| t >= v)
        .unwrap_or(10.0 * unit)
}

/// `v` in a few characters: 10k, 1.5M.
fn short(v: f64) -> String {
    let (n, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let n = if n >= 10.0 || n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    };
    format!("{n}{unit}")
}

/// `text` as SVG text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
