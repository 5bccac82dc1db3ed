//! The plotters charts of [`super`] (feature `plots`).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use sits_repr::render::{label_color, RgbImage};
use sits_ssl::metrics::ConfusionMatrix;

use super::{ReportError, Result};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";

fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid, so registration cannot fail in practice; if it
        // did, text would be missing from the charts, nothing worse.
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn draw_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> ReportError + '_ {
    move |e| ReportError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Renders into a `width x height` RGB buffer with `draw`, then writes the PNG.
fn render<F>(path: &Path, width: u32, height: u32, draw: F) -> Result<()>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
{
    ensure_font();
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(path))?;
        draw(&root)?;
        root.present().map_err(draw_err(path))?;
    }
    let mut img = RgbImage::new(width as usize, height as usize);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let o = (y * width as usize + x) * 3;
            img.set(x, y, [buf[o], buf[o + 1], buf[o + 2]]);
        }
    }
    img.write_png(path).map_err(|e| ReportError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

type Axes<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Titled axes over `x` × `y` with their names and label-area sizes, mesh drawn.
fn axes<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    path: &Path,
    title: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    (x_desc, y_desc): (&str, &str),
    (x_area, y_area): (u32, u32),
) -> Result<Axes<'a, 'b>> {
    let e = draw_err(path);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x, y)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 14))
        .draw()
        .map_err(&e)?;
    Ok(chart)
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Colours for line series: the label palette of `sits_repr::render`.
fn series_color(i: usize) -> RGBColor {
    rgb(label_color(i as i64))
}

fn finite_range(values: impl Iterator<Item = f64>, what: &str) -> Result<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return Err(ReportError::Input(format!(
            "{what}: no finite value to draw"
        )));
    }
    if hi - lo < 1e-12 {
        let pad = lo.abs().max(1.0) * 0.05;
        return Ok((lo - pad, hi + pad));
    }
    let pad = (hi - lo) * 0.04;
    Ok((lo - pad, hi + pad))
}

/// A line chart of one or more named `(x, y)` series (e.g. the loss per step and its
/// per-epoch mean). Non-finite points are skipped.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
) -> Result<()> {
    if series.iter().all(|(_, s)| s.is_empty()) {
        return Err(ReportError::Input(format!(
            "line chart {}: every series is empty",
            path.display()
        )));
    }
    let all = || series.iter().flat_map(|(_, s)| s.iter());
    let (x0, x1) = finite_range(all().map(|p| p.0), "line chart x")?;
    let (y0, y1) = finite_range(all().map(|p| p.1), "line chart y")?;
    render(path, 800, 500, |root| {
        let e = draw_err(path);
        let mut chart = axes(
            root,
            path,
            title,
            (x0..x1, y0..y1),
            (x_label, y_label),
            (40, 64),
        )?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = series_color(i);
            let pts: Vec<(f64, f64)> = pts
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(&e)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(&e)?;
        Ok(())
    })
}

/// A confusion matrix as a heat map (rows = truth, columns = prediction), each row
/// normalised to its recall, with the counts written in the cells.
pub fn confusion_chart(
    path: &Path,
    title: &str,
    cm: &ConfusionMatrix,
    class_names: &[String],
) -> Result<()> {
    let k = cm.classes();
    if class_names.len() != k {
        return Err(ReportError::Input(format!(
            "confusion chart {}: {} class names for a {k}x{k} matrix",
            path.display(),
            class_names.len()
        )));
    }
    if k == 0 {
        return Err(ReportError::Input("confusion chart: no class".into()));
    }
    let rows = cm.rows();
    let cell = 56u32;
    let left = 20 + 9 * class_names.iter().map(|s| s.len()).max().unwrap_or(1) as u32 + 30;
    let top = 60u32;
    let (w, h) = (left + cell * k as u32 + 20, top + cell * k as u32 + 60);
    render(path, w, h, |root| {
        let e = draw_err(path);
        let text = |s: &str, x: i32, y: i32, size: i32, color: RGBColor| {
            root.draw(&Text::new(
                s.to_string(),
                (x, y),
                (FAMILY, size).into_font().color(&color),
            ))
        };
        text(title, 10, 10, 20, BLACK).map_err(&e)?;
        text("prediction ->", left as i32, 36, 14, BLACK).map_err(&e)?;
        for (i, row) in rows.iter().enumerate() {
            let n: u64 = row.iter().sum();
            let y = (top + cell * i as u32) as i32;
            text(
                &format!("{i} {}", class_names[i]),
                10,
                y + cell as i32 / 2 - 7,
                14,
                BLACK,
            )
            .map_err(&e)?;
            for (j, &c) in row.iter().enumerate() {
                let x = (left + cell * j as u32) as i32;
                let frac = if n > 0 { c as f64 / n as f64 } else { 0.0 };
                let shade = (255.0 * (1.0 - frac)) as u8;
                let fill = if i == j {
                    RGBColor(shade, shade.saturating_add(40).max(shade), 255)
                } else {
                    RGBColor(255, shade, shade)
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32 - 1, y + cell as i32 - 1)],
                    fill.filled(),
                ))
                .map_err(&e)?;
                let ink = if frac > 0.55 { WHITE } else { BLACK };
                text(&c.to_string(), x + 6, y + cell as i32 / 2 - 7, 14, ink).map_err(&e)?;
            }
        }
        for j in 0..k {
            let x = (left + cell * j as u32) as i32 + cell as i32 / 2 - 5;
            text(
                &j.to_string(),
                x,
                (top + cell * k as u32) as i32 + 6,
                14,
                BLACK,
            )
            .map_err(&e)?;
        }
        text(
            &format!(
                "OA {:.3}  macro-F1 {:.3}  kappa {:.3}  (rows: truth, shade: recall)",
                cm.overall_accuracy(),
                cm.macro_f1(),
                cm.kappa()
            ),
            10,
            (top + cell * k as u32) as i32 + 30,
            14,
            BLACK,
        )
        .map_err(&e)?;
        Ok(())
    })
}

/// A scatter plot of 2-D points coloured by class (e.g. a PCA of embeddings).
pub fn scatter_chart(
    path: &Path,
    title: &str,
    points: &[[f64; 2]],
    labels: &[usize],
    class_names: &[String],
) -> Result<()> {
    if points.len() != labels.len() {
        return Err(ReportError::Input(format!(
            "scatter chart {}: {} points but {} labels",
            path.display(),
            points.len(),
            labels.len()
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| l >= class_names.len()) {
        return Err(ReportError::Input(format!(
            "scatter chart {}: label {l} has no class name ({} names)",
            path.display(),
            class_names.len()
        )));
    }
    let (x0, x1) = finite_range(points.iter().map(|p| p[0]), "scatter x")?;
    let (y0, y1) = finite_range(points.iter().map(|p| p[1]), "scatter y")?;
    render(path, 800, 600, |root| {
        let e = draw_err(path);
        let names = ("component 1", "component 2");
        let mut chart = axes(root, path, title, (x0..x1, y0..y1), names, (36, 56))?;
        for (c, name) in class_names.iter().enumerate() {
            let color = rgb(label_color(c as i64));
            let pts: Vec<(f64, f64)> = points
                .iter()
                .zip(labels)
                .filter(|(p, &l)| l == c && p[0].is_finite() && p[1].is_finite())
                .map(|(p, _)| (p[0], p[1]))
                .collect();
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(
                    pts.into_iter()
                        .map(move |p| Circle::new(p, 3, color.mix(0.8).filled())),
                )
                .map_err(&e)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(&e)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).expect("read png");
        assert_eq!(&bytes[1..4], b"PNG");
        let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        (w, h)
    }

    #[test]
    fn charts_are_written_and_bad_input_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.png");
        let cm = ConfusionMatrix::from_labels(3, &[0, 0, 1, 2, 2], &[0, 1, 1, 2, 0], None)
            .expect("confusion matrix");
        let names: Vec<String> = ["a", "bb", "ccc"].iter().map(|s| s.to_string()).collect();
        confusion_chart(&p, "cm", &cm, &names).expect("confusion");
        let (w, h) = png_size(&p);
        assert!(w > 200 && h > 200, "{w}x{h}");
        assert!(confusion_chart(&p, "cm", &cm, &names[..2]).is_err());

        let s = dir.path().join("s.png");
        let pts = [[0.0, 1.0], [1.0, 0.5], [2.0, -1.0]];
        scatter_chart(&s, "pca", &pts, &[0, 1, 2], &names).expect("scatter");
        assert_eq!(png_size(&s), (800, 600));
        let err = scatter_chart(&s, "pca", &pts, &[0, 1], &names).expect_err("lengths");
        assert!(err.to_string().contains("3 points but 2 labels"), "{err}");
        assert!(scatter_chart(&s, "pca", &pts, &[0, 1, 7], &names).is_err());

        let l = dir.path().join("l.png");
        let e = line_chart(&l, "t", "x", "y", &[("a", &[])]).expect_err("empty");
        assert!(e.to_string().contains("empty"), "{e}");
        let nan = [(0.0, f64::NAN)];
        assert!(line_chart(&l, "t", "x", "y", &[("a", &nan)]).is_err());
    }
}
