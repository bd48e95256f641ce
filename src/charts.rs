//! Charts for the public dashboard, drawn by `plotters` into SVG (its SVG backend only: text
//! stays SVG `<text>`, so no font files are needed). Each chart carries a `<title>` and a
//! `<desc>` and `role="img"`, and the page shows the same figures as a table.
//!
//! The SVG has presentation attributes only (no `style`), so it passes the portal's
//! Content-Security-Policy however it is embedded.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 720;
const HEIGHT: u32 = 360;
const FONT: &str = "sans-serif";

/// Colours of the series, in order; dark enough against white for text and bars (WCAG 1.4.11).
const PALETTE: [RGBColor; 3] = [
    RGBColor(0x1f, 0x4e, 0x8c),
    RGBColor(0xb3, 0x4a, 0x00),
    RGBColor(0x2e, 0x6b, 0x30),
];

/// A named row of values, one per category (or per day).
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// What every chart has: its words in the page's language.
pub struct Labels {
    pub title: String,
    pub desc: String,
    pub y_axis: String,
}

#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct ChartError(String);

fn err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError(format!("{e:?}"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Puts `role`, `aria-labelledby`, `<title>` and `<desc>` at the top of plotters' SVG.
fn accessible(svg: String, labels: &Labels) -> String {
    let Some(open_end) = svg
        .find("<svg")
        .and_then(|i| svg[i..].find('>').map(|j| i + j))
    else {
        return svg;
    };
    let (head, rest) = svg.split_at(open_end);
    format!(
        "{head} role=\"img\" aria-labelledby=\"chart-title chart-desc\"><title id=\"chart-title\">{}</title><desc id=\"chart-desc\">{}</desc>{}",
        escape(&labels.title),
        escape(&labels.desc),
        &rest[1..],
    )
}

fn y_top(series: &[Series], at_least: f64) -> f64 {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max);
    // room above the highest bar for the legend when there is one
    let headroom = if series.len() > 1 { 1.35 } else { 1.1 };
    (max * headroom).max(at_least)
}

fn draw<F>(labels: &Labels, paint: F) -> Result<String, ChartError>
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), ChartError>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        paint(&root)?;
        root.present().map_err(err)?;
    }
    Ok(accessible(out, labels))
}

/// Bars per category, one bar per series side by side (`y_format` writes the axis' numbers).
pub fn bars(
    labels: &Labels,
    categories: &[String],
    series: &[Series],
    y_min_top: f64,
    y_format: &dyn Fn(f64) -> String,
) -> Result<String, ChartError> {
    draw(labels, |root| {
        let n = categories.len().max(1) as f64;
        let top = y_top(series, y_min_top);
        let mut chart = ChartBuilder::on(root)
            .caption(&labels.title, (FONT, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..n, 0.0..top)
            .map_err(err)?;
        let y_fmt = |v: &f64| y_format(*v);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .y_label_formatter(&y_fmt)
            .y_desc(labels.y_axis.as_str())
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(err)?;
        let m = series.len().max(1) as f64;
        let width = 0.8 / m;
        for (k, s) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let drawn = chart
                .draw_series(s.values.iter().enumerate().map(|(i, v)| {
                    let x0 = i as f64 + 0.1 + k as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, *v)], colour.filled())
                }))
                .map_err(err)?;
            if series.len() > 1 {
                drawn.label(s.name.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
            }
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        // the category names under their bars
        let style = TextStyle::from((FONT, 13).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (i, c) in categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(c.as_str(), (x, y + 6), style.clone()))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// One line per series over consecutive days (`day_label` names the day at an index).
pub fn lines(
    labels: &Labels,
    days: usize,
    series: &[Series],
    day_label: &dyn Fn(usize) -> String,
) -> Result<String, ChartError> {
    draw(labels, |root| {
        let last = days.saturating_sub(1).max(1) as i32;
        let top = y_top(series, 1.0);
        let mut chart = ChartBuilder::on(root)
            .caption(&labels.title, (FONT, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0..last, 0.0..top)
            .map_err(err)?;
        let x_fmt = |i: &i32| day_label(usize::try_from(*i).unwrap_or(0));
        let y_fmt = |v: &f64| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(days.clamp(2, 10))
            .x_label_formatter(&x_fmt)
            .y_labels(6)
            .y_label_formatter(&y_fmt)
            .y_desc(labels.y_axis.as_str())
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(err)?;
        for (k, s) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.values.iter().enumerate().map(|(i, v)| (i as i32, *v)),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels {
            title: "Tỷ lệ đúng hạn <theo cơ quan>".into(),
            desc: "MOIT 66,7 %".into(),
            y_axis: "%".into(),
        }
    }

    #[test]
    fn a_bar_chart_is_svg_with_its_title_and_no_style() {
        let svg = bars(
            &labels(),
            &["MOIT".into(), "MOH".into()],
            &[Series {
                name: "rate".into(),
                values: vec![66.7, 100.0],
            }],
            100.0,
            &|v| format!("{v:.0}"),
        )
        .unwrap();
        assert!(
            svg.contains("<title id=\"chart-title\">Tỷ lệ đúng hạn &lt;theo cơ quan&gt;</title>")
        );
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("\nMOIT\n</text>"), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
        assert!(!svg.contains("<style"), "{svg}");
    }

    #[test]
    fn a_line_chart_of_one_day_draws() {
        let svg = lines(
            &labels(),
            1,
            &[Series {
                name: "a".into(),
                values: vec![3.0],
            }],
            &|i| format!("d{i}"),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<desc id=\"chart-desc\">MOIT 66,7 %</desc>"));
    }
}
