//! The report of a segmentation: the results table, the map panels, the class maps
//! as Zarr stores, `report.md` and `results.json`.

use std::path::Path;

use ndarray::Array2;
use sits_core::io::IfExists;
use sits_data::Datacube;
use sits_repr::render::{label_color, RgbImage};

use crate::error::{Result, TaskError};
#[cfg(feature = "plots")]
use crate::report::line_chart;
use crate::report::{markdown_table, write_atomic};

use super::*;

/// The results table (OA, mIoU, IoU per class, seconds) as Markdown.
pub fn table(s: &Segmentation, class_names: &[String]) -> String {
    let mut header = vec!["model", "test OA", "test mIoU"];
    header.extend(class_names.iter().map(String::as_str));
    header.push("seconds");
    let rows: Vec<Vec<String>> = s
        .models
        .iter()
        .map(|m| {
            let mut r = vec![
                m.name.clone(),
                format!("{:.4}", m.confusion.overall_accuracy()),
                format!("{:.4}", m.confusion.miou()),
            ];
            r.extend(
                m.confusion
                    .iou_per_class()
                    .iter()
                    .map(|v| format!("{v:.4}")),
            );
            r.push(format!("{:.0}", m.seconds));
            r
        })
        .collect();
    markdown_table(&header, &rows)
}

pub(super) fn label_image(map: &Array2<i64>, colors: &[[u8; 3]]) -> RgbImage {
    let (h, w) = map.dim();
    let mut img = RgbImage::new(w, h);
    for ((y, x), &c) in map.indexed_iter() {
        let rgb = match usize::try_from(c) {
            Ok(i) if i < colors.len() => colors[i],
            Ok(_) => label_color(c),
            Err(_) => [0, 0, 0],
        };
        img.set(x, y, rgb);
    }
    img.upscale(3)
}

/// Writes into `dir`: `maps.png` (reference, U-BARN, U-BARN fine-tuned, U-TAE, raw,
/// split),
/// `loss.png`, `report.md`, `results.json`, and each model's class map as a Zarr
/// store (one date, band `class`): `ubarn_ssl.zarr`, `ubarn_random_init.zarr`,
/// `ubarn_finetuned.zarr`, `utae.zarr`, `raw_probe.zarr`. `notes` go into the report.
pub fn write_outputs(
    dir: &Path,
    input: &SegmentationInput,
    cfg: &SegmentConfig,
    s: &Segmentation,
    notes: &str,
) -> Result<()> {
    let (h, w) = input.labels.dim();
    let split_img = Array2::from_shape_fn((h, w), |(y, x)| match input.split[[y, x]] {
        1 => 1,
        2 => 3,
        _ => -1,
    });
    let split_colors = [[0, 0, 0], [174, 213, 129], [0, 0, 0], [211, 47, 47]];
    let reference = Array2::from_shape_fn((h, w), |(y, x)| {
        if input.split[[y, x]] == 0 {
            -1
        } else {
            input.labels[[y, x]]
        }
    });
    let colors = &input.colors;
    let pred = |n: &str| s.model(n).map(|m| label_image(&m.prediction, colors));
    let mut panels = vec![label_image(&reference, colors)];
    panels.extend(
        [pred(UBARN), pred(UBARN_FINETUNED), pred(UTAE), pred(RAW)]
            .into_iter()
            .flatten(),
    );
    panels.push(label_image(&split_img, &split_colors));
    RgbImage::hstack(&panels, 6).write_png(&dir.join("maps.png"))?;
    #[cfg(feature = "plots")]
    {
        let head_curve: Vec<(f64, f64)> = s
            .head_losses
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                (
                    (i + 1) as f64 * cfg.epochs as f64 / cfg.head_steps.max(1) as f64,
                    l,
                )
            })
            .collect();
        line_chart(
            &dir.join("loss.png"),
            "training losses (head steps scaled to epochs)",
            "epoch",
            "loss",
            &[
                ("U-BARN masked reconstruction (MSE)", &s.pretrain_curve),
                ("U-TAE cross-entropy", &s.utae_curve),
                ("U-BARN fine-tuning cross-entropy", &s.finetune_curve),
                ("U-BARN head cross-entropy", &head_curve),
            ],
        )?;
    }
    let first = input
        .cube
        .times()
        .to_iso()
        .into_iter()
        .next()
        .unwrap_or_default();
    let times = sits_core::dates::Timestamps::parse(&[first], "first date")
        .map_err(sits_data::DataError::from)?;
    for m in &s.models {
        let values = m
            .prediction
            .mapv(|c| if c >= 0 { c as f32 } else { f32::NAN })
            .insert_axis(ndarray::Axis(0))
            .insert_axis(ndarray::Axis(0));
        let cube = Datacube::new(values, times.clone(), vec!["class".into()])?;
        let name = match m.name.as_str() {
            UBARN => "ubarn_ssl".to_string(),
            UBARN_RANDOM => "ubarn_random_init".to_string(),
            UBARN_FINETUNED => "ubarn_finetuned".to_string(),
            UTAE => "utae".to_string(),
            RAW => "raw_probe".to_string(),
            // probes on other per-pixel features: their name, as a file name
            other => other
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect(),
        };
        sits_data::zarr::write_cube(
            &cube,
            &dir.join(format!("{name}.zarr")),
            Default::default(),
            IfExists::Replace,
        )?;
    }
    let table = table(s, &input.class_names);
    let json = serde_json::json!({
        "dates_kept": s.dates_kept.0,
        "dates": s.dates_kept.1,
        "train_pixels": s.pixels.0,
        "test_pixels": s.pixels.1,
        "config": cfg,
        "models": s.models.iter().map(|m| serde_json::json!({
            "model": m.name,
            "oa": m.confusion.overall_accuracy(),
            "miou": m.confusion.miou(),
            "iou": input.class_names.iter().zip(m.confusion.iou_per_class()).map(|(n, v)| (n.clone(), v)).collect::<std::collections::BTreeMap<_, _>>(),
            "confusion": m.confusion.rows(),
            "seconds": m.seconds,
        })).collect::<Vec<_>>(),
        "curves": {
            "pretrain_loss": s.pretrain_curve,
            "utae_loss": s.utae_curve,
            "utae_validation_miou": s.utae_val_curve,
            "finetune_loss": s.finetune_curve,
            "finetune_validation_miou": s.finetune_val_curve,
        },
        "total_seconds": s.seconds,
    });
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| TaskError::Settings(format!("serialising the results: {e}")))?;
    write_atomic(&dir.join("results.json"), text.as_bytes())?;
    let loss = if crate::report::CHARTS {
        "![loss](loss.png)"
    } else {
        crate::report::NO_CHARTS
    };
    let md = format!(
        "# Segmentation\n\n{} of {} dates kept, {} train and {} test pixels.\n\n{table}\n\n\
         ![maps](maps.png)\n\nPanels: reference, U-BARN SSL, U-BARN fine-tuned (when it ran), U-TAE, raw probe, split \
         (green train, red test).\n\n{loss}\n\n{notes}\n",
        s.dates_kept.0, s.dates_kept.1, s.pixels.0, s.pixels.1
    );
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    Ok(())
}
