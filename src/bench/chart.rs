//! `--chart FILE.svg`: the capacity curve (p99 latency against offered rate, one line per
//! scenario, from the capacity search's steps) above throughput over time (requests per second,
//! second by second, one line per scenario), drawn with plotters' SVG backend.

use std::path::Path;

use plotters::prelude::*;

use super::report::Report;

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Draws `report` into an SVG file at `path`.
pub fn draw(report: &Report, path: &Path) -> Result<(), String> {
    let failed = |error: &dyn std::fmt::Display| format!("cannot draw {}: {error}", path.display());
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| failed(&error))?;
    let (top, bottom) = root.split_vertically(360);

    // The capacity curve.
    let curves: Vec<(&str, Vec<(f64, f64)>)> = report
        .scenarios
        .iter()
        .filter_map(|scenario| {
            let capacity = scenario.capacity.as_ref()?;
            let mut points: Vec<(f64, f64)> = capacity
                .steps
                .iter()
                .map(|step| (step.offered, step.latency.p99_ms))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Some((scenario.name.as_str(), points))
        })
        .collect();
    let max_rate = curves
        .iter()
        .flat_map(|(_, points)| points.iter().map(|point| point.0))
        .fold(1.0, f64::max);
    let max_latency = curves
        .iter()
        .flat_map(|(_, points)| points.iter().map(|point| point.1))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            if curves.is_empty() {
                "p99 latency against offered rate (run `tabula bench capacity` to draw it)"
            } else {
                "p99 latency against offered rate"
            },
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_rate * 1.05, 0.0..max_latency * 1.1)
        .map_err(|error| failed(&error))?;
    chart
        .configure_mesh()
        .x_desc("offered requests/s")
        .y_desc("p99 ms")
        .draw()
        .map_err(|error| failed(&error))?;
    for (index, (name, points)) in curves.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|error| failed(&error))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|point| Circle::new(*point, 3, colour.filled())),
            )
            .map_err(|error| failed(&error))?;
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|error| failed(&error))?;
    }

    // Throughput over time.
    let series: Vec<(&str, Vec<(f64, f64)>)> = report
        .scenarios
        .iter()
        .map(|scenario| {
            let points = scenario
                .seconds
                .iter()
                .map(|second| {
                    (
                        super::recorder::count_f64(second.second),
                        super::recorder::count_f64(second.requests),
                    )
                })
                .collect();
            (scenario.name.as_str(), points)
        })
        .collect();
    let max_second = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|point| point.0))
        .fold(1.0, f64::max);
    let max_throughput = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|point| point.1))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&bottom)
        .caption("throughput over time", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_second, 0.0..max_throughput * 1.1)
        .map_err(|error| failed(&error))?;
    chart
        .configure_mesh()
        .x_desc("second of the run")
        .y_desc("requests/s")
        .draw()
        .map_err(|error| failed(&error))?;
    for (index, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|error| failed(&error))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|error| failed(&error))?;
    }
    root.present().map_err(|error| failed(&error))?;
    Ok(())
}
