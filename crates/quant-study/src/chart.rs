//! One PNG bar chart per evaluation text: perplexity of every cell with its uncertainty.
//!
//! Labels need a TrueType font, which is read at run time (never bundled): the file named
//! by `QUANT_STUDY_FONT`, else the first of [`FONT_SEARCH_PATHS`] that exists. Debian and
//! Ubuntu ship DejaVu Sans in the `fonts-dejavu-core` package.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::prelude::*;

use crate::error::StudyError;
use crate::results::StudyResults;

/// Environment variable that names the font file for chart labels.
pub const FONT_ENV: &str = "QUANT_STUDY_FONT";

/// Font files tried in order when `QUANT_STUDY_FONT` is not set: DejaVu Sans on Debian,
/// Fedora and Arch, Liberation Sans, then macOS's and Windows's Arial.
pub const FONT_SEARCH_PATHS: [&str; 7] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Chart size in pixels.
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 800;

/// Share of each x-axis group that the bars fill; the rest separates groups.
const GROUP_FILL: f64 = 0.8;

/// Font family name under which the font is registered with plotters.
const FAMILY: &str = "sans-serif";

/// Bar color of the base, light so that its black error bar shows.
const BASE_COLOR: RGBColor = RGBColor(230, 190, 90);

/// Bar colors by imatrix mode, in specification order (then repeated).
const MODE_COLORS: [RGBColor; 6] = [
    RGBColor(120, 120, 120),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// Returns the font file for chart labels: `QUANT_STUDY_FONT` when set, else the first of
/// [`FONT_SEARCH_PATHS`] that exists.
///
/// # Errors
/// [`StudyError::FontMissing`] when `QUANT_STUDY_FONT` names no file and no search path exists.
pub fn find_font() -> Result<PathBuf, StudyError> {
    if let Some(path) = std::env::var_os(FONT_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(StudyError::FontMissing { searched: format!("{FONT_ENV}={}", path.display()) });
    }
    FONT_SEARCH_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| StudyError::FontMissing { searched: FONT_SEARCH_PATHS.join(", ") })
}

/// Registers the font with plotters once per process; plotters keeps fonts for the
/// program's lifetime, so the bytes are leaked on purpose.
fn register_font() -> Result<(), StudyError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = REGISTERED.get_or_init(|| {
        let path = find_font().map_err(|e| e.to_string())?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).map_err(|_| format!("{}: not a valid TrueType font", path.display()))
    });
    outcome.clone().map_err(|message| StudyError::Chart { path: PathBuf::from("charts"), message })
}

/// Draws `charts/ppl-<text>.png` for every text and returns the files written.
pub(crate) fn draw_charts(results: &StudyResults) -> Result<Vec<PathBuf>, StudyError> {
    register_font()?;
    let folder = results.spec.out.join("charts");
    std::fs::create_dir_all(&folder).map_err(|e| StudyError::io(&folder, e))?;

    let mut written = Vec::new();
    for text in &results.spec.texts {
        let path = folder.join(format!("ppl-{}.png", text.name));
        // The bitmap encoder picks the format from the extension, so the temporary name keeps `.png`.
        let temporary = folder.join(format!(".ppl-{}.{}.tmp.png", text.name, std::process::id()));
        let drawn = draw_text_chart(results, &text.name, &temporary);
        if let Err(message) = drawn {
            let _ = std::fs::remove_file(&temporary);
            return Err(StudyError::Chart { path, message });
        }
        std::fs::rename(&temporary, &path).map_err(|e| StudyError::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// One bar: group (x position), mode index, perplexity and its uncertainty.
struct Bar {
    group: usize,
    mode: usize,
    ppl: f64,
    err: f64,
}

fn draw_text_chart(results: &StudyResults, text: &str, path: &Path) -> Result<(), String> {
    let modes: Vec<&str> = results.spec.modes.iter().map(|m| m.name()).collect();
    let mut groups = vec!["base F32".to_owned()];
    groups.extend(results.spec.quantizations.iter().map(|q| q.label()));

    let mut bars = Vec::new();
    if let Some(eval) = results.base.iter().find(|e| e.text == text) {
        bars.push(Bar { group: 0, mode: usize::MAX, ppl: eval.ppl, err: eval.ppl_err.unwrap_or(0.0) });
    }
    for cell in &results.cells {
        let group = 1 + results.spec.quantizations.iter().position(|q| *q == cell.quantization).unwrap_or(0);
        let mode = modes.iter().position(|m| *m == cell.mode).unwrap_or(0);
        if let Some(eval) = cell.evals.iter().find(|e| e.text == text) {
            bars.push(Bar { group, mode, ppl: eval.ppl, err: eval.ppl_err.unwrap_or(0.0) });
        }
    }

    // The y axis starts near the lowest bar so that small differences stay visible.
    let low = bars.iter().map(|b| b.ppl - b.err).fold(f64::INFINITY, f64::min);
    let high = bars.iter().map(|b| b.ppl + b.err).fold(0.0, f64::max);
    let (y_min, y_max) = if low.is_finite() { ((low * 0.9).max(0.0), high * 1.05) } else { (0.0, 1.0) };

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let x_axis = 0.0..groups.len() as f64;
    let title = format!("Perplexity on {text} (n_ctx {}, {} chunks; y axis starts at {y_min:.1})", results.spec.n_ctx, results.spec.eval_chunks);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_axis, y_min..y_max)
        .map_err(|e| e.to_string())?;

    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("perplexity (± llama.cpp uncertainty)")
        .y_label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .draw()
        .map_err(|e| e.to_string())?;

    let bar_width = GROUP_FILL / modes.len().max(1) as f64;
    let span = |bar: &Bar| -> (f64, f64) {
        if bar.mode == usize::MAX {
            let left = bar.group as f64 + 0.5 - bar_width / 2.0;
            return (left, left + bar_width);
        }
        let left = bar.group as f64 + (1.0 - GROUP_FILL) / 2.0 + bar.mode as f64 * bar_width;
        (left, left + bar_width * 0.95)
    };
    let color = |mode: usize| if mode == usize::MAX { BASE_COLOR } else { MODE_COLORS[mode % MODE_COLORS.len()] };

    for (index, mode) in modes.iter().enumerate().chain(std::iter::once((usize::MAX, &"base"))) {
        let rectangles: Vec<_> = bars
            .iter()
            .filter(|b| b.mode == index)
            .map(|b| {
                let (left, right) = span(b);
                Rectangle::new([(left, y_min), (right, b.ppl)], color(index).filled())
            })
            .collect();
        let fill = color(index);
        chart
            .draw_series(rectangles)
            .map_err(|e| e.to_string())?
            .label(mode.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], fill.filled()));
    }

    let whiskers = bars.iter().flat_map(|b| {
        let (left, right) = span(b);
        let middle = (left + right) / 2.0;
        let cap = (right - left) / 4.0;
        let (bottom, top) = (b.ppl - b.err, b.ppl + b.err);
        [
            PathElement::new(vec![(middle, bottom), (middle, top)], BLACK.stroke_width(2)),
            PathElement::new(vec![(middle - cap, top), (middle + cap, top)], BLACK.stroke_width(2)),
            PathElement::new(vec![(middle - cap, bottom), (middle + cap, bottom)], BLACK.stroke_width(2)),
        ]
    });
    chart.draw_series(whiskers).map_err(|e| e.to_string())?;

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 18))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;

    // Group names go under the axis, centred on each group.
    let label_style = TextStyle::from((FAMILY, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (index, name) in groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(index as f64 + 0.5, y_min));
        root.draw(&Text::new(name.clone(), (x, y + 10), label_style.clone())).map_err(|e| e.to_string())?;
    }

    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
