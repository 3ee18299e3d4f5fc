//! PNG line charts (plotters, with DejaVu Sans embedded so no system fonts
//! are needed). Files are written atomically.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// One line of a panel.
pub(crate) struct Line<'a> {
    /// Legend label.
    pub(crate) label: &'a str,
    /// Points (x, y); NaN y values break the line.
    pub(crate) points: Vec<(f64, f64)>,
    /// Colour.
    pub(crate) color: RGBColor,
    /// Draw as a filled band down to `band_floor` instead of a line.
    pub(crate) band_floor: Option<Vec<f64>>,
}

/// One panel: a title, a y-axis label and its lines.
pub(crate) struct Panel<'a> {
    /// Caption above the panel.
    pub(crate) title: String,
    /// Y-axis description.
    pub(crate) y_label: &'a str,
    /// Lines, drawn in order.
    pub(crate) lines: Vec<Line<'a>>,
}

/// Palette shared by every chart, so policies keep their colours.
pub(crate) const BLUE: RGBColor = RGBColor(31, 119, 180);
/// Orange.
pub(crate) const ORANGE: RGBColor = RGBColor(255, 127, 14);
/// Green.
pub(crate) const GREEN: RGBColor = RGBColor(44, 160, 44);
/// Grey, for demand and history.
pub(crate) const GREY: RGBColor = RGBColor(90, 90, 90);

static FONTS: Once = Once::new();

fn register_fonts() {
    FONTS.call_once(|| {
        // The bytes are a valid TTF from the dejavu crate; failure would mean
        // text renders blank, which is not worth failing a report over.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Keeps at most `max` points, taking each bucket's largest y (so peaks
/// survive), or its smallest when `low` is set (so dips in capacity survive).
pub(crate) fn thin(points: &[(f64, f64)], max: usize, low: bool) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .filter_map(|c| {
            let pick = |a: &&(f64, f64), b: &&(f64, f64)| a.1.total_cmp(&b.1);
            let p = if low {
                c.iter().filter(|p| p.1.is_finite()).min_by(pick)
            } else {
                c.iter().filter(|p| p.1.is_finite()).max_by(pick)
            };
            p.map(|p| (c[0].0, p.1)).or(Some((c[0].0, f64::NAN)))
        })
        .collect()
}

/// Draws the panels stacked vertically, sharing the x axis (`x_label`).
pub(crate) fn draw(path: &Path, x_label: &str, panels: &[Panel<'_>]) -> std::io::Result<()> {
    register_fonts();
    let (w, h) = (1600u32, 450 * panels.len().max(1) as u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(std::io::Error::other)?;
        let areas = root.split_evenly((panels.len().max(1), 1));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(area, x_label, panel).map_err(std::io::Error::other)?;
        }
        root.present().map_err(std::io::Error::other)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| std::io::Error::other("chart buffer has the wrong size"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageOutputFormat::Png)
        .map_err(std::io::Error::other)?;
    crate::durable::write_bytes_atomically(path, png.get_ref())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    x_label: &str,
    panel: &Panel<'_>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let finite = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter())
        .filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for p in finite {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
        y1 = y1.max(p.1);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 > 0.0 { y1 * 1.05 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(panel.y_label)
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for line in &panel.lines {
        let color = line.color;
        if let Some(floor) = &line.band_floor {
            let pts: Vec<(f64, f64)> = line.points.clone();
            let lower: Vec<(f64, f64)> = pts
                .iter()
                .zip(floor)
                .map(|(p, f)| (p.0, *f))
                .rev()
                .collect();
            let poly: Vec<(f64, f64)> = pts
                .into_iter()
                .chain(lower)
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(poly, color.mix(0.2).filled())))?
                .label(line.label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 20, y + 5)], color.mix(0.3).filled())
                });
            continue;
        }
        // NaN breaks the line into segments.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for p in &line.points {
            if p.1.is_finite() {
                if let Some(s) = segments.last_mut() {
                    s.push(*p);
                }
            } else if segments.last().is_some_and(|s| !s.is_empty()) {
                segments.push(Vec::new());
            }
        }
        let mut first = true;
        for seg in segments.into_iter().filter(|s| !s.is_empty()) {
            let drawn = chart.draw_series(LineSeries::new(seg, color.stroke_width(2)))?;
            if first {
                drawn.label(line.label).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3))
                });
                first = false;
            }
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_peaks_and_dips() {
        let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, (i % 10) as f64)).collect();
        let hi = thin(&pts, 10, false);
        assert_eq!(hi.len(), 10);
        assert!(hi.iter().all(|p| p.1 == 9.0));
        let lo = thin(&pts, 10, true);
        assert!(lo.iter().all(|p| p.1 == 0.0));
    }

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.png");
        let pts: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64, (i as f64).sin() + 1.0))
            .collect();
        draw(
            &p,
            "hours",
            &[Panel {
                title: "test".into(),
                y_label: "y",
                lines: vec![Line {
                    label: "sin",
                    points: pts,
                    color: BLUE,
                    band_floor: None,
                }],
            }],
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
