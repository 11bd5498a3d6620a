//! The comparison as an SVG chart: CPU seconds per million items for each
//! system (left) and the latency percentiles at the fixed rate (right).

use std::path::Path;

use plotters::{
    coord::{Shift, ranged1d::SegmentValue},
    prelude::*,
};

use crate::compare::Results;

const PALETTE: [RGBColor; 7] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x7f, 0x7f, 0x7f),
];

type Failure = Box<dyn std::error::Error>;

/// Writes the chart.
pub fn write(path: &Path, r: &Results) -> Result<(), Failure> {
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(520);
    cpu(&left, r)?;
    latency(&right, r)?;
    root.present()?;
    Ok(())
}

fn cpu(area: &DrawingArea<SVGBackend, Shift>, r: &Results) -> Result<(), Failure> {
    let names: Vec<&str> = r.rows.iter().map(|row| row.system.as_str()).collect();
    let values: Vec<f64> = r
        .rows
        .iter()
        .map(|row| {
            if row.cpu_s_per_million.is_finite() {
                row.cpu_s_per_million
            } else {
                0.0
            }
        })
        .collect();
    let top = values.iter().cloned().fold(0.0, f64::max).max(1e-3);
    // A log scale: rotel's cost is tens of times the proxies'.
    let floor = values
        .iter()
        .cloned()
        .filter(|v| *v > 0.0)
        .fold(top, f64::min)
        / 3.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("CPU seconds per million {} (log)", r.items),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(
            // A segmented `0..n` has n + 1 slots; `0..n - 1` has n.
            (0..names.len().saturating_sub(1)).into_segmented(),
            (floor..top * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).map_or(String::new(), |s| s.to_string()),
            _ => String::new(),
        })
        .y_desc("CPU s / M")
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()?;
    chart.draw_series(values.iter().enumerate().map(|(i, v)| {
        let color = PALETTE[i % PALETTE.len()];
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), floor),
                (SegmentValue::Exact(i + 1), v.max(floor)),
            ],
            color.filled(),
        );
        bar.set_margin(0, 0, 12, 12);
        bar
    }))?;
    chart.draw_series(values.iter().enumerate().map(|(i, v)| {
        Text::new(
            format!("{v:.3}"),
            (SegmentValue::CenterOf(i), v.max(floor) * 1.15),
            ("sans-serif", 13).into_font(),
        )
    }))?;
    Ok(())
}

fn latency(area: &DrawingArea<SVGBackend, Shift>, r: &Results) -> Result<(), Failure> {
    const LABELS: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];
    let mut series: Vec<(String, [f64; 5])> = Vec::new();
    if let Some(d) = &r.direct {
        series.push(("direct to sink".into(), points(&d.latency_us)));
    }
    for row in &r.rows {
        if let Some(s) = &row.latency {
            series.push((row.system.clone(), points(&s.latency_us)));
        }
    }
    let all = series.iter().flat_map(|(_, p)| p.iter().cloned());
    let top = all.clone().fold(0.0, f64::max).max(0.01);
    let floor = all.filter(|v| *v > 0.0).fold(top, f64::min) / 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("Latency at {:.0} requests/s, ms (log)", r.rate),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (0..LABELS.len() - 1).into_segmented(),
            (floor..top * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_labels(LABELS.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => LABELS.get(*i).map_or(String::new(), |s| s.to_string()),
            _ => String::new(),
        })
        .y_desc("ms")
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()?;
    // The baseline is grey; each system keeps its colour from the left panel.
    let has_direct = r.direct.is_some();
    for (k, (name, p)) in series.iter().enumerate() {
        let color = match (has_direct, k) {
            (true, 0) => PALETTE[6],
            (true, k) => PALETTE[(k - 1) % PALETTE.len()],
            (false, k) => PALETTE[k % PALETTE.len()],
        };
        chart
            .draw_series(LineSeries::new(
                p.iter()
                    .enumerate()
                    .map(|(i, v)| (SegmentValue::CenterOf(i), v.max(floor))),
                color.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn points(l: &crate::report::Percentiles) -> [f64; 5] {
    [l.p50, l.p90, l.p99, l.p99_9, l.max].map(|us| us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        compare::Row,
        report::{Percentiles, Summary},
    };

    #[test]
    fn writes_an_svg_with_every_system() {
        let summary = |p50| Summary {
            target: String::new(),
            protocol: "grpc".into(),
            signal: "traces".into(),
            mode: String::new(),
            seconds: 1.0,
            requests_ok: 1,
            requests_failed: 0,
            items_ok: 1,
            bytes_ok: 1,
            requests_per_s: 1.0,
            items_per_s: 1.0,
            bytes_per_s: 1.0,
            errors: Default::default(),
            latency_us: Percentiles {
                p50,
                p90: p50 * 2,
                p99: p50 * 3,
                p99_9: p50 * 4,
                max: p50 * 5,
                mean: p50 as f64,
            },
        };
        let results = Results {
            rate: 100.0,
            items: "spans".into(),
            direct: Some(summary(200)),
            rows: ["otlp-lb", "nginx", "rotel"]
                .iter()
                .enumerate()
                .map(|(i, name)| Row {
                    system: name.to_string(),
                    cpu_s_per_million: 0.2 * (i as f64 + 1.0),
                    latency: Some(summary(300 + 100 * i as u64)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let path = std::env::temp_dir().join(format!("chart-{}.svg", std::process::id()));
        write(&path, &results).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"));
        for name in ["otlp-lb", "nginx", "rotel", "direct to sink"] {
            assert!(svg.contains(name), "{name} missing");
        }
    }
}
