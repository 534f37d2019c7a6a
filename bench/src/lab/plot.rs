//! The benchmarks' SVG: a curve over time on the left (the lab: closes seen
//! by the peer, lingerd vs the kernel; the generator: opens and closes),
//! a latency CDF on the right, each panel with its own captions.
//!
//! plotters with the SVG backend only (no default features: no fontconfig,
//! no bitmap). It owns the one file it writes and nothing else.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// One curve.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// What the SVG shows.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Title line.
    pub title: String,
    /// Closes over time, seconds → cumulative closes.
    pub over_time: Vec<Series>,
    /// Latency CDF, µs → fraction.
    pub cdf: Vec<Series>,
    /// The left and the right panel's captions.
    pub panels: [Panel; 2],
}

/// A panel's caption and axis descriptions.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Above the chart.
    pub caption: String,
    /// Under the x axis.
    pub x_desc: String,
    /// Beside the y axis.
    pub y_desc: String,
}

impl Panel {
    /// A panel's three texts.
    pub fn text(caption: &str, x_desc: &str, y_desc: &str) -> Panel {
        Panel {
            caption: caption.to_owned(),
            x_desc: x_desc.to_owned(),
            y_desc: y_desc.to_owned(),
        }
    }

    /// The lab benchmark's panels: closes at the peer over time, and the
    /// close request → wire latency.
    pub fn lab() -> [Panel; 2] {
        [
            Panel::text(
                "closes seen by the peer over time",
                "seconds since the first close request",
                "connections closed",
            ),
            Panel::text(
                "close request → RST/FIN on the wire (CDF)",
                "latency, µs",
                "fraction of closes",
            ),
        ]
    }
}

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

fn extent(series: &[Series], f: impl Fn(&(f64, f64)) -> f64) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(&f))
        .fold(0.0, f64::max)
        .max(1e-9)
}

/// One panel: a titled chart of line series with a legend.
struct Chart<'a> {
    caption: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x_max: f64,
    y_max: f64,
    y_label_width: u32,
    series: &'a [Series],
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: Chart<'_>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(p.caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(p.y_label_width)
        .build_cartesian_2d(0.0..p.x_max, 0.0..p.y_max)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(p.x_desc)
        .y_desc(p.y_desc)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, s) in p.series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Writes `fig` to `path`.
pub fn write_svg(path: &Path, fig: &Figure) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(&fig.title, ("sans-serif", 20))
        .map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(600);
    draw_panel(
        &left,
        Chart {
            caption: &fig.panels[0].caption,
            x_desc: &fig.panels[0].x_desc,
            y_desc: &fig.panels[0].y_desc,
            x_max: extent(&fig.over_time, |p| p.0) * 1.05,
            y_max: extent(&fig.over_time, |p| p.1) * 1.05,
            y_label_width: 70,
            series: &fig.over_time,
        },
    )?;
    draw_panel(
        &right,
        Chart {
            caption: &fig.panels[1].caption,
            x_desc: &fig.panels[1].x_desc,
            y_desc: &fig.panels[1].y_desc,
            x_max: extent(&fig.cdf, |p| p.0) * 1.05,
            y_max: 1.0,
            y_label_width: 50,
            series: &fig.cdf,
        },
    )?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_both_charts() {
        let dir = tempfile::Builder::new()
            .prefix("lingerd-plot-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("t.svg");
        let fig = Figure {
            title: "test".into(),
            over_time: vec![
                Series {
                    label: "lingerd".into(),
                    points: vec![(0.0, 0.0), (0.1, 1000.0)],
                },
                Series {
                    label: "kernel".into(),
                    points: vec![(0.0, 0.0), (1.0, 1000.0)],
                },
            ],
            cdf: vec![Series {
                label: "lingerd".into(),
                points: vec![(1.0, 0.0), (5.0, 0.5), (9.0, 1.0)],
            }],
            panels: Panel::lab(),
        };
        write_svg(&path, &fig).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("lingerd") && svg.contains("kernel"));
        assert!(svg.contains("<polyline"));
    }
}
