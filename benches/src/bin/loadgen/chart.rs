//! The SVG chart: QPS and p99 latency against calls in flight, one row per payload.

use crate::orchestrator::{Plan, Point};
use crate::report::human_size;

pub(crate) fn chart(path: &str, plan: &Plan, points: &[Point]) -> Result<(), String> {
    use plotters::prelude::*;
    let rows = plan.payloads.len().max(1);
    let root = SVGBackend::new(path, (1100, 330 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let cells = root.split_evenly((rows, 2));
    let colors = [
        RGBColor(0, 0, 0),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(23, 190, 207),
        RGBColor(148, 103, 189),
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
    ];
    let max_c = plan.concurrency.iter().copied().max().unwrap_or(1).max(2) as u32;
    for (row, &payload) in plan.payloads.iter().enumerate() {
        for (col, metric) in ["QPS", "p99 µs"].iter().enumerate() {
            let area = &cells[row * 2 + col];
            let value = |p: &Point| if col == 0 { p.qps } else { p.p99 as f64 };
            let here: Vec<&Point> = points.iter().filter(|p| p.payload == payload).collect();
            let max_v = here.iter().map(|p| value(p)).fold(1.0, f64::max) * 1.5;
            let min_v = here.iter().map(|p| value(p)).fold(max_v, f64::min).max(1.0) / 1.5;
            let mut c = ChartBuilder::on(area)
                .caption(
                    format!("{metric}, payload {}", human_size(payload)),
                    ("sans-serif", 16),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d((1u32..max_c).log_scale(), (min_v..max_v).log_scale())
                .map_err(|e| e.to_string())?;
            c.configure_mesh()
                .x_desc("calls in flight")
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, sys) in plan.systems.iter().enumerate() {
                let color = colors[i % colors.len()];
                let mut series: Vec<(u32, f64)> = here
                    .iter()
                    .filter(|p| p.system == *sys)
                    .map(|p| (p.concurrency as u32, value(p)))
                    .collect();
                series.sort_by_key(|(c, _)| *c);
                c.draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(sys.name())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                c.draw_series(
                    series
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(|e| e.to_string())?;
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(if col == 0 {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperLeft
                })
                .draw()
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}
