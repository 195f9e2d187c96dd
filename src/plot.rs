//! PNG plots for the `enma` CLI: a tiny CPU raster ([`Canvas`]) with lines, rectangles and a
//! built-in 5×7 bitmap font, the viridis and blue–white–red colour maps, and three figures:
//! side-by-side [`heatmaps`] (space–time images and 2D frames), [`lines`] (loss curves, errors
//! over time, ensemble mean ± 2σ bands) and [`grid`] to tile several figures.
//!
//! No GPU and no font files: everything is drawn pixel by pixel and written with the `png`
//! crate. Bad input (empty data, wrong lengths) is an [`Error::Invalid`]; non-finite values are
//! drawn grey in heatmaps and left out of line plots. Nothing here panics.
//!
//! ```no_run
//! use enma::plot::{LinePlot, Series, lines};
//! # fn main() -> enma::Result<()> {
//! let loss = Series { label: "train".into(), x: vec![1.0, 2.0, 3.0], y: vec![1.0, 0.1, 0.02],
//!     band: None, color: None, dashed: false };
//! let plot = LinePlot { title: "Loss".into(), x_label: "epoch".into(), y_label: "MSE".into(),
//!     series: vec![loss], log_y: true };
//! lines(&plot)?.save_png("loss.png")?;
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::error::{Error, Result};

/// Black, for text and axes.
pub const BLACK: [u8; 3] = [0, 0, 0];
/// White, the background of every canvas.
pub const WHITE: [u8; 3] = [255, 255, 255];
/// Grey used for NaN/Inf cells and out-of-range colour-map input.
pub const NAN_GREY: [u8; 3] = [128, 128, 128];
/// Default series colours of [`lines`] (a qualitative palette), used in order.
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

/// Largest width or height of a [`Canvas`]; larger requests are clamped.
pub const MAX_SIDE: usize = 16384;
/// Horizontal advance of one character at scale 1 (5 px glyph + 1 px gap).
const CHAR_W: usize = 6;
/// Height of one character cell at scale 1 (7 rows above the baseline + 1 descender row).
const CHAR_H: usize = 8;
const GRID_GREY: [u8; 3] = [228, 228, 228];
const AXIS_GREY: [u8; 3] = [90, 90, 90];

/// An RGB8 raster with a white background. Coordinates are pixels, x to the right, y down;
/// drawing outside the canvas is clipped silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A white canvas. Each side is clamped to `1..=MAX_SIDE`.
    pub fn new(width: usize, height: usize) -> Canvas {
        let (width, height) = (width.clamp(1, MAX_SIDE), height.clamp(1, MAX_SIDE));
        Canvas { width, height, pixels: vec![255; width * height * 3] }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The raw pixels, row-major RGB8 (`width * height * 3` bytes).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    fn index(&self, x: i64, y: i64) -> Option<usize> {
        let inside = x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height;
        inside.then(|| (y as usize * self.width + x as usize) * 3)
    }

    /// The colour at `(x, y)`, or `None` outside the canvas.
    pub fn get(&self, x: i64, y: i64) -> Option<[u8; 3]> {
        self.index(x, y).map(|i| [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if let Some(i) = self.index(x, y) {
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    /// Mixes `color` into one pixel with weight `alpha` in `[0, 1]` (0 keeps the pixel).
    pub fn blend(&mut self, x: i64, y: i64, color: [u8; 3], alpha: f32) {
        let a = if alpha.is_nan() { 0.0 } else { alpha.clamp(0.0, 1.0) };
        if let Some(i) = self.index(x, y) {
            for (p, c) in self.pixels[i..i + 3].iter_mut().zip(color) {
                *p = (*p as f32 * (1.0 - a) + c as f32 * a).round() as u8;
            }
        }
    }

    /// Fills the rectangle with top-left corner `(x, y)` and size `w × h` (clipped).
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: [u8; 3]) {
        let (x0, y0) = (x.max(0), y.max(0));
        let x1 = x.saturating_add(w).min(self.width as i64);
        let y1 = y.saturating_add(h).min(self.height as i64);
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.set(xx, yy, color);
            }
        }
    }

    /// Draws the outline of a rectangle, 1 px wide, inside `(x, y, w, h)`.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: [u8; 3]) {
        self.fill_rect(x, y, w, 1, color);
        self.fill_rect(x, y.saturating_add(h - 1), w, 1, color);
        self.fill_rect(x, y, 1, h, color);
        self.fill_rect(x.saturating_add(w - 1), y, 1, h, color);
    }

    /// A solid line from `(x0, y0)` to `(x1, y1)` (Bresenham, no anti-aliasing), `thickness`
    /// pixels wide (clamped to 1..=3).
    pub fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3], thickness: u32) {
        self.line_dashed(x0, y0, x1, y1, color, thickness, None, &mut 0);
    }

    /// Like [`Canvas::line`], optionally dashed with `(on, off)` pixel lengths; `phase` carries
    /// the dash position from one segment of a polyline to the next.
    #[allow(clippy::too_many_arguments)]
    fn line_dashed(
        &mut self,
        x0: i64,
        y0: i64,
        x1: i64,
        y1: i64,
        color: [u8; 3],
        thickness: u32,
        dash: Option<(u32, u32)>,
        phase: &mut u32,
    ) {
        let t = thickness.clamp(1, 3) as i64;
        let m = t + 1; // margin so thick lines near the border are clipped, not cut off
        let bounds = (-m, -m, self.width as i64 + m, self.height as i64 + m);
        let Some((mut x, mut y, x1, y1)) = clip_segment(x0, y0, x1, y1, bounds) else { return };
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            let on = match dash {
                Some((a, b)) => *phase % (a + b).max(1) < a,
                None => true,
            };
            *phase = phase.wrapping_add(1);
            if on {
                self.fill_rect(x - (t - 1) / 2, y - (t - 1) / 2, t, t, color);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `s` with its top-left corner at `(x, y)` in the built-in 5×7 font, each font pixel
    /// `scale × scale` screen pixels (scale clamped to 1..=4). Characters outside printable
    /// ASCII are drawn as `?`. The text fills exactly the box of [`text_size`].
    pub fn text(&mut self, x: i64, y: i64, s: &str, color: [u8; 3], scale: u32) {
        for_each_text_pixel(s, scale, |gx, gy| self.set(x.saturating_add(gx), y.saturating_add(gy), color));
    }

    /// Draws `s` rotated 90° counter-clockwise (reading bottom to top), for y-axis labels. The
    /// box's top-left corner is `(x, y)`; it is `text_size(s).1` wide and `text_size(s).0` tall.
    pub fn text_up(&mut self, x: i64, y: i64, s: &str, color: [u8; 3], scale: u32) {
        let w = text_size(s, scale).0 as i64;
        for_each_text_pixel(s, scale, |gx, gy| self.set(x.saturating_add(gy), y.saturating_add(w - 1 - gx), color));
    }

    /// Copies `other` onto this canvas with its top-left corner at `(x, y)` (clipped).
    pub fn blit(&mut self, other: &Canvas, x: i64, y: i64) {
        for oy in 0..other.height as i64 {
            for ox in 0..other.width as i64 {
                if let Some(c) = other.get(ox, oy) {
                    self.set(x + ox, y + oy, c);
                }
            }
        }
    }

    /// Writes the canvas as an 8-bit RGB PNG. The file is written to `path.png.tmp` first and
    /// renamed, so a reader never sees a half-written image.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tmp = path.with_extension("png.tmp");
        let io_err = |p: &Path, source: std::io::Error| Error::Io { path: p.display().to_string(), source };
        let write = || -> std::io::Result<()> {
            let file = BufWriter::new(File::create(&tmp)?);
            let mut encoder = png::Encoder::new(file, self.width as u32, self.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(std::io::Error::from)?;
            writer.write_image_data(&self.pixels).map_err(std::io::Error::from)?;
            writer.finish().map_err(std::io::Error::from)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(&tmp, e));
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(path, e)
        })
    }
}

/// Size `(width, height)` in pixels of `s` drawn by [`Canvas::text`] at `scale`: 6 px per
/// character (minus the trailing gap) by 8 px (7 rows plus one descender row), times `scale`.
pub fn text_size(s: &str, scale: u32) -> (usize, usize) {
    let scale = scale.clamp(1, 4) as usize;
    let n = s.chars().count();
    ((n * CHAR_W).saturating_sub(1) * scale, if n == 0 { 0 } else { CHAR_H * scale })
}

/// Calls `f(x, y)` for every lit pixel of `s`, relative to the text box's top-left corner.
fn for_each_text_pixel(s: &str, scale: u32, mut f: impl FnMut(i64, i64)) {
    let scale = scale.clamp(1, 4) as i64;
    for (i, ch) in s.chars().enumerate() {
        let code = ch as usize;
        let glyph = if (32..127).contains(&code) { &FONT[code - 32] } else { &FONT[b'?' as usize - 32] };
        let left = i as i64 * CHAR_W as i64 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    for sy in 0..scale {
                        for sx in 0..scale {
                            f(left + col * scale + sx, row as i64 * scale + sy);
                        }
                    }
                }
            }
        }
    }
}

/// Cuts the segment to `(xmin, ymin, xmax, ymax)` (Liang–Barsky); `None` when it misses.
fn clip_segment(x0: i64, y0: i64, x1: i64, y1: i64, b: (i64, i64, i64, i64)) -> Option<(i64, i64, i64, i64)> {
    let (fx0, fy0, dx, dy) = (x0 as f64, y0 as f64, x1 as f64 - x0 as f64, y1 as f64 - y0 as f64);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    let checks = [(-dx, fx0 - b.0 as f64), (dx, b.2 as f64 - fx0), (-dy, fy0 - b.1 as f64), (dy, b.3 as f64 - fy0)];
    for (p, q) in checks {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| ((fx0 + t * dx).round() as i64, (fy0 + t * dy).round() as i64);
    let ((ax, ay), (bx, by)) = (at(t0), at(t1));
    Some((ax, ay, bx, by))
}

/// Linear interpolation in a table of evenly spaced anchor colours; NaN gives [`NAN_GREY`].
fn interpolate(table: &[[u8; 3]], t: f32) -> [u8; 3] {
    if t.is_nan() {
        return NAN_GREY;
    }
    let pos = t.clamp(0.0, 1.0) * (table.len() - 1) as f32;
    let i = (pos.floor() as usize).min(table.len() - 2);
    let f = pos - i as f32;
    let (a, b) = (table[i], table[i + 1]);
    std::array::from_fn(|k| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * f).round() as u8)
}

/// The viridis colour map (dark purple at 0, yellow at 1), perceptually uniform; `t` is clamped
/// to `[0, 1]` and NaN gives [`NAN_GREY`].
pub fn viridis(t: f32) -> [u8; 3] {
    const VIRIDIS: [[u8; 3]; 10] = [
        [68, 1, 84],
        [72, 36, 117],
        [65, 68, 135],
        [53, 95, 141],
        [42, 120, 142],
        [33, 145, 140],
        [34, 168, 132],
        [68, 191, 112],
        [122, 209, 81],
        [253, 231, 37],
    ];
    interpolate(&VIRIDIS, t)
}

/// A diverging blue–white–red colour map for signed errors: blue at 0, near-white at 0.5, red
/// at 1; `t` is clamped to `[0, 1]` and NaN gives [`NAN_GREY`].
pub fn diverging(t: f32) -> [u8; 3] {
    const RDBU: [[u8; 3]; 9] = [
        [33, 102, 172],
        [67, 147, 195],
        [146, 197, 222],
        [209, 229, 240],
        [247, 247, 247],
        [253, 219, 199],
        [244, 165, 130],
        [214, 96, 77],
        [178, 24, 43],
    ];
    interpolate(&RDBU, t)
}

/// One panel of [`heatmaps`]: a row-major `rows × cols` grid drawn with row 0 at the top and
/// column 0 at the left. For a 1D space–time image use rows = time, cols = space (time runs
/// downwards); for a 2D frame use rows = y, cols = x.
#[derive(Debug, Clone)]
pub struct Heatmap<'a> {
    /// Title drawn above the panel.
    pub title: String,
    /// `rows * cols` values, row-major. NaN and ±Inf cells are drawn grey.
    pub data: &'a [f32],
    /// Number of rows (drawn top to bottom).
    pub rows: usize,
    /// Number of columns (drawn left to right).
    pub cols: usize,
    /// Label under the panel (the column axis).
    pub x_label: String,
    /// Label left of the panel, written bottom to top (the row axis).
    pub y_label: String,
    /// Blue–white–red map (for signed errors) instead of viridis.
    pub diverging: bool,
    /// Colour range `(min, max)`; `None` takes the data's finite range, or `±max|v|` when
    /// `diverging` so that zero is white.
    pub range: Option<(f32, f32)>,
}

/// A line plot: see [`lines`].
#[derive(Debug, Clone, Default)]
pub struct LinePlot {
    /// Title drawn above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label left of the y axis, written bottom to top.
    pub y_label: String,
    /// The curves, drawn in order.
    pub series: Vec<Series>,
    /// Logarithmic y axis (for loss curves); non-positive values are left out.
    pub log_y: bool,
}

/// One curve of a [`LinePlot`]. Points with a non-finite coordinate break the line.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend entry; an empty label is not listed.
    pub label: String,
    /// X coordinates.
    pub x: Vec<f32>,
    /// Y coordinates, as many as `x`.
    pub y: Vec<f32>,
    /// Optional `(lower, upper)` band (e.g. ensemble mean ± 2σ), each as long as `x`, filled
    /// with a 25 % tint of the series colour. On a log axis a non-positive lower bound is drawn
    /// at the bottom of the axis.
    pub band: Option<(Vec<f32>, Vec<f32>)>,
    /// Line colour; `None` takes the next colour of [`PALETTE`].
    pub color: Option<[u8; 3]>,
    /// Dashed instead of solid.
    pub dashed: bool,
}

/// Side of a heatmap image for `n` cells: each cell at least one pixel and the image at least
/// 200 px (integer upscaling); more than 512 cells are sampled down to 512 px.
fn panel_side(n: usize) -> usize {
    if n >= 512 { 512 } else { n * 200usize.div_ceil(n) }
}

/// Draws panels side by side under `title`, each with a panel title, axis labels, first/last
/// index ticks and its own colour bar labelled with min, mid and max. Cells are scaled by nearest
/// neighbour to panels of at least ~200 px per side.
///
/// Errors: no panels, a panel with zero rows or columns, `data.len() != rows * cols`, or a
/// `range` that is not finite with `min < max`.
pub fn heatmaps(panels: &[Heatmap], title: &str) -> Result<Canvas> {
    if panels.is_empty() {
        return Err(Error::invalid("plot::heatmaps", "no panels to draw"));
    }
    let drawn = panels.iter().map(|p| heatmap_panel(p).map(|(c, _)| c)).collect::<Result<Vec<_>>>()?;
    let title_h = if title.is_empty() { 0 } else { 30 };
    let width = drawn.iter().map(Canvas::width).sum::<usize>().max(text_size(title, 2).0 + 20);
    let height = title_h + drawn.iter().map(Canvas::height).max().unwrap_or(1);
    let mut out = Canvas::new(width, height);
    out.text((width as i64 - text_size(title, 2).0 as i64) / 2, 10, title, BLACK, 2);
    let mut x = 0;
    for c in &drawn {
        out.blit(c, x, title_h as i64);
        x += c.width() as i64;
    }
    Ok(out)
}

/// Draws one heatmap panel; also returns the image rectangle `(x, y, w, h)` inside it.
fn heatmap_panel(p: &Heatmap) -> Result<(Canvas, (i64, i64, i64, i64))> {
    let op = format!("plot::heatmaps (panel '{}')", p.title);
    if p.rows == 0 || p.cols == 0 {
        return Err(Error::invalid(op, format!("the panel is {} × {}; both sides must be positive", p.rows, p.cols)));
    }
    if p.rows.checked_mul(p.cols) != Some(p.data.len()) {
        let msg = format!("{} values do not fill {} rows × {} cols", p.data.len(), p.rows, p.cols);
        return Err(Error::invalid(op, msg));
    }
    let finite = || p.data.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
    let (lo, hi) = match p.range {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => (lo as f64, hi as f64),
        Some((lo, hi)) => {
            return Err(Error::invalid(op, format!("range ({lo}, {hi}) must be finite with min < max")));
        }
        None if p.diverging => {
            let m = finite().fold(0.0f64, |m, v| m.max(v.abs()));
            if m > 0.0 { (-m, m) } else { (-1.0, 1.0) }
        }
        None => {
            let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            if lo > hi {
                (0.0, 1.0)
            } else if lo == hi {
                let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
                (lo - d, hi + d)
            } else {
                (lo, hi)
            }
        }
    };
    let cmap = |v: f64| -> [u8; 3] {
        let t = ((v - lo) / (hi - lo)) as f32;
        if p.diverging { diverging(t) } else { viridis(t) }
    };
    let (pw, ph) = (panel_side(p.cols) as i64, panel_side(p.rows) as i64);
    let tick_lo = "0".to_string();
    let (row_hi, col_hi) = ((p.rows - 1).to_string(), (p.cols - 1).to_string());
    let mid = if ((lo + hi) / 2.0).abs() < (hi - lo) * 1e-4 { 0.0 } else { (lo + hi) / 2.0 };
    let bar_labels = [hi, mid, lo].map(fmt_sig);
    let label_w = bar_labels.iter().map(|s| text_size(s, 1).0).max().unwrap_or(0) as i64;
    let pad = 10;
    // Left to right: pad, y label, gap, row ticks, gap, image, gap, colour bar, gap, labels, pad.
    let ix = pad + CHAR_H as i64 + 6 + text_size(&row_hi, 1).0 as i64 + 5;
    let iy = pad + CHAR_H as i64 + 8;
    let (bar_x, bar_w) = (ix + pw + 12, 14);
    let mut width = bar_x + bar_w + 6 + label_w + pad;
    let height = iy + ph + 8 + CHAR_H as i64 + 6 + CHAR_H as i64 + pad;
    let need = text_size(&p.title, 1).0.max(text_size(&p.x_label, 1).0) as i64 + 2 * pad;
    let shift = ((need - width) / 2).max(0);
    width = width.max(need);
    let (ix, bar_x) = (ix + shift, bar_x + shift);
    let mut c = Canvas::new(width as usize, height as usize);

    for py in 0..ph {
        let row = py as usize * p.rows / ph as usize;
        for px in 0..pw {
            let col = px as usize * p.cols / pw as usize;
            let v = p.data[row * p.cols + col];
            c.set(ix + px, iy + py, if v.is_finite() { cmap(v as f64) } else { NAN_GREY });
        }
    }
    c.stroke_rect(ix - 1, iy - 1, pw + 2, ph + 2, AXIS_GREY);
    let center = |s: &str| text_size(s, 1).0 as i64 / 2;
    c.text(ix + pw / 2 - center(&p.title), pad, &p.title, BLACK, 1);
    let below = iy + ph + 6;
    c.text(ix, below, &tick_lo, BLACK, 1);
    c.text(ix + pw - text_size(&col_hi, 1).0 as i64, below, &col_hi, BLACK, 1);
    c.text(ix + pw / 2 - center(&p.x_label), below + CHAR_H as i64 + 6, &p.x_label, BLACK, 1);
    let tick_x = |s: &str| ix - 5 - text_size(s, 1).0 as i64;
    c.text(tick_x(&tick_lo), iy, &tick_lo, BLACK, 1);
    c.text(tick_x(&row_hi), iy + ph - 7, &row_hi, BLACK, 1);
    c.text_up(shift + pad, iy + ph / 2 - center(&p.y_label), &p.y_label, BLACK, 1);

    for py in 0..ph {
        let t = 1.0 - py as f64 / (ph - 1).max(1) as f64;
        c.fill_rect(bar_x, iy + py, bar_w, 1, cmap(lo + t * (hi - lo)));
    }
    c.stroke_rect(bar_x - 1, iy - 1, bar_w + 2, ph + 2, AXIS_GREY);
    for (k, label) in bar_labels.iter().enumerate() {
        let y = iy + k as i64 * (ph - 1) / 2;
        c.fill_rect(bar_x + bar_w, y, 4, 1, AXIS_GREY);
        c.text(bar_x + bar_w + 6, y - 3, label, BLACK, 1);
    }
    Ok((c, (ix, iy, pw, ph)))
}

/// An axis: its range (log10 units on a log axis) and labelled ticks at positions in that range.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
}

/// About five ticks at 1, 2 or 5 × 10^k, the range rounded outwards to whole steps.
fn linear_axis(mut lo: f64, mut hi: f64) -> Axis {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo, hi) = (lo - d, lo + d);
    }
    let raw = (hi - lo) / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm < 1.5 {
            1.0
        } else if norm < 3.0 {
            2.0
        } else if norm < 7.0 {
            5.0
        } else {
            10.0
        };
    let (a, b) = ((lo / step).floor(), (hi / step).ceil());
    let values: Vec<f64> = (0..=((b - a) as usize).min(20)).map(|k| (a + k as f64) * step).collect();
    let max_abs = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let sci = !(1e-2..1e4).contains(&max_abs);
    let label = |v: f64| {
        if v.abs() < step * 1e-6 {
            "0".to_string()
        } else if sci {
            let digits = (v.abs().log10().floor() - step.log10().floor()).clamp(0.0, 6.0) as usize;
            fmt_sci(v, digits)
        } else {
            trim_zeros(format!("{:.*}", (-step.log10().floor()).clamp(0.0, 9.0) as usize, v))
        }
    };
    Axis { lo: a * step, hi: b * step, ticks: values.iter().map(|&v| (v, label(v))).collect() }
}

/// Ticks at powers of ten for a log axis spanning `lo..hi` (in log10 units), at most ~7 of them.
fn log_axis(lo: f64, hi: f64) -> Axis {
    let a = lo.floor();
    let decades = ((hi.ceil() - a) as i64).max(1);
    let stride = ((decades + 5) / 6).max(1);
    let n = (decades + stride - 1) / stride;
    let label = |e: i64| {
        if (-2..=3).contains(&e) {
            trim_zeros(format!("{:.*}", (-e).max(0) as usize, 10f64.powi(e as i32)))
        } else {
            format!("1e{e}")
        }
    };
    let ticks = (0..=n).map(|k| a as i64 + k * stride).map(|e| (e as f64, label(e))).collect();
    Axis { lo: a, hi: a + (n * stride) as f64, ticks }
}

/// Removes trailing zeros (and a trailing point) after a decimal point: "1.50" → "1.5".
fn trim_zeros(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// Scientific notation with `digits` mantissa decimals, trailing zeros removed: "2.5e-3".
fn fmt_sci(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$e}");
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", trim_zeros(m.to_string())),
        None => s,
    }
}

/// About three significant digits, in scientific notation outside `[0.01, 10^4)`.
fn fmt_sig(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let e = v.abs().log10().floor();
    if !(-2.0..4.0).contains(&e) { fmt_sci(v, 2) } else { trim_zeros(format!("{:.*}", (2.0 - e).max(0.0) as usize, v)) }
}

/// Finite data bounds `((xmin, xmax), (ymin, ymax))` of a line plot, y in log10 units when
/// `log_y` (non-positive values left out); `None` when nothing is plottable.
fn data_bounds(plot: &LinePlot) -> Option<((f64, f64), (f64, f64))> {
    let mut xb = (f64::INFINITY, f64::NEG_INFINITY);
    let mut yb = xb;
    for s in &plot.series {
        let band = s.band.as_ref();
        for (i, &x) in s.x.iter().enumerate() {
            let ys = [s.y.get(i), band.and_then(|b| b.0.get(i)), band.and_then(|b| b.1.get(i))];
            for y in ys.into_iter().flatten().filter_map(|&y| y_value(y, plot.log_y)) {
                if x.is_finite() {
                    xb = (xb.0.min(x as f64), xb.1.max(x as f64));
                    yb = (yb.0.min(y), yb.1.max(y));
                }
            }
        }
    }
    (xb.0 <= xb.1).then_some((xb, yb))
}

/// A y value in axis units (log10 on a log axis), or `None` when it cannot be drawn.
fn y_value(y: f32, log_y: bool) -> Option<f64> {
    match (y.is_finite(), log_y) {
        (true, false) => Some(y as f64),
        (true, true) if y > 0.0 => Some((y as f64).log10()),
        _ => None,
    }
}

/// Draws a line plot with ~5 ticks per axis, grid lines, title, axis labels, a legend of the
/// labelled series and translucent bands. The figure is 720 × 440 px.
///
/// Errors: no series, `x`/`y`/band lengths that differ, or no finite point to draw (on a log
/// axis: no positive y value).
pub fn lines(plot: &LinePlot) -> Result<Canvas> {
    const OP: &str = "plot::lines";
    let (w, h) = (720i64, 440i64);
    if plot.series.is_empty() {
        return Err(Error::invalid(OP, "no series to draw"));
    }
    for (i, s) in plot.series.iter().enumerate() {
        let name = format!("series {i} ('{}')", s.label);
        if s.x.len() != s.y.len() {
            return Err(Error::invalid(OP, format!("{name}: x has {} values but y has {}", s.x.len(), s.y.len())));
        }
        if let Some((lo, hi)) = &s.band
            && (lo.len() != s.x.len() || hi.len() != s.x.len())
        {
            let msg = format!("{name}: band has {} and {} values but x has {}", lo.len(), hi.len(), s.x.len());
            return Err(Error::invalid(OP, msg));
        }
    }
    let Some(((x0, x1), (y0, y1))) = data_bounds(plot) else {
        let why =
            if plot.log_y { "no finite positive y value to draw on a log axis" } else { "no finite point to draw" };
        return Err(Error::invalid(OP, why));
    };
    let xa = linear_axis(x0, x1);
    let ya = if plot.log_y { log_axis(y0, y1) } else { linear_axis(y0, y1) };
    let tick_w = ya.ticks.iter().map(|(_, s)| text_size(s, 1).0).max().unwrap_or(0) as i64;
    let (left, right, top, bottom) = (12 + CHAR_H as i64 + 10 + tick_w + 6, w - 24, 44, h - 52);
    let px = |x: f64| left + ((x - xa.lo) / (xa.hi - xa.lo) * (right - left) as f64).round() as i64;
    let py = |y: f64| bottom - ((y - ya.lo) / (ya.hi - ya.lo) * (bottom - top) as f64).round() as i64;
    let mut c = Canvas::new(w as usize, h as usize);
    for &(v, _) in &xa.ticks {
        c.fill_rect(px(v), top, 1, bottom - top, GRID_GREY);
    }
    for &(v, _) in &ya.ticks {
        c.fill_rect(left, py(v), right - left, 1, GRID_GREY);
    }
    let colors: Vec<[u8; 3]> =
        plot.series.iter().enumerate().map(|(i, s)| s.color.unwrap_or(PALETTE[i % PALETTE.len()])).collect();

    // Bands: mark the covered pixels of each series once, then tint them.
    for (s, &color) in plot.series.iter().zip(&colors) {
        let Some((lower, upper)) = &s.band else { continue };
        let point = |i: usize| -> Option<(f64, f64, f64)> {
            let (x, up, low) = (*s.x.get(i)?, *upper.get(i)?, *lower.get(i)?);
            let hi = y_value(up, plot.log_y)?;
            let lo = y_value(low, plot.log_y).or(plot.log_y.then_some(ya.lo))?;
            x.is_finite().then_some((px(x as f64) as f64, py(lo) as f64, py(hi) as f64))
        };
        let (aw, ah) = ((right - left + 1) as usize, (bottom - top + 1) as usize);
        let mut mask = vec![false; aw * ah];
        let mut mark = |x: f64, ya: f64, yb: f64| {
            let col = (x.round() as i64 - left).clamp(0, aw as i64 - 1) as usize;
            let (r0, r1) =
                ((ya.min(yb).round() as i64 - top).max(0), (ya.max(yb).round() as i64 - top).min(ah as i64 - 1));
            for r in r0..=r1 {
                mask[r as usize * aw + col] = true;
            }
        };
        for i in 0..s.x.len() {
            match (point(i), i.checked_sub(1).and_then(point), point(i + 1)) {
                (Some(p), None, None) => mark(p.0, p.1, p.2),
                (Some(p), _, Some(q)) => {
                    let steps = (q.0 - p.0).abs().max(1.0) as usize;
                    for k in 0..=steps {
                        let f = k as f64 / steps as f64;
                        mark(p.0 + (q.0 - p.0) * f, p.1 + (q.1 - p.1) * f, p.2 + (q.2 - p.2) * f);
                    }
                }
                _ => {}
            }
        }
        for (k, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            c.blend(left + (k % aw) as i64, top + (k / aw) as i64, color, 0.25);
        }
    }

    // Curves, broken at points that cannot be drawn; an isolated point becomes a dot.
    for (s, &color) in plot.series.iter().zip(&colors) {
        let point = |i: usize| -> Option<(i64, i64)> {
            let (x, y) = (*s.x.get(i)?, y_value(*s.y.get(i)?, plot.log_y)?);
            x.is_finite().then(|| (px(x as f64), py(y)))
        };
        let dash = s.dashed.then_some((8, 5));
        let mut phase = 0;
        for i in 0..s.x.len() {
            let Some(p) = point(i) else { continue };
            match (i.checked_sub(1).and_then(point), point(i + 1)) {
                (_, Some(q)) => c.line_dashed(p.0, p.1, q.0, q.1, color, 2, dash, &mut phase),
                (None, None) => c.fill_rect(p.0 - 2, p.1 - 2, 4, 4, color),
                _ => {}
            }
        }
    }

    // Frame, ticks, labels.
    c.stroke_rect(left, top, right - left + 1, bottom - top + 1, AXIS_GREY);
    for (v, label) in &xa.ticks {
        let x = px(*v);
        c.fill_rect(x, bottom + 1, 1, 4, AXIS_GREY);
        c.text(x - text_size(label, 1).0 as i64 / 2, bottom + 8, label, BLACK, 1);
    }
    for (v, label) in &ya.ticks {
        let y = py(*v);
        c.fill_rect(left - 4, y, 4, 1, AXIS_GREY);
        c.text(left - 7 - text_size(label, 1).0 as i64, y - 3, label, BLACK, 1);
    }
    let mid_x = (left + right) / 2;
    c.text(mid_x - text_size(&plot.title, 2).0 as i64 / 2, 14, &plot.title, BLACK, 2);
    c.text(mid_x - text_size(&plot.x_label, 1).0 as i64 / 2, bottom + 26, &plot.x_label, BLACK, 1);
    let ylabel_h = text_size(&plot.y_label, 1).0 as i64;
    c.text_up(12, (top + bottom) / 2 - ylabel_h / 2, &plot.y_label, BLACK, 1);

    // Legend in the top-right corner of the plot area.
    let entries: Vec<_> = plot.series.iter().zip(&colors).filter(|(s, _)| !s.label.is_empty()).collect();
    if !entries.is_empty() {
        let label_w = entries.iter().map(|(s, _)| text_size(&s.label, 1).0).max().unwrap_or(0) as i64;
        let (bw, bh) = (8 + 22 + 6 + label_w + 8, entries.len() as i64 * 14 + 8);
        let (bx, by) = (right - bw - 8, top + 8);
        c.fill_rect(bx, by, bw, bh, WHITE);
        c.stroke_rect(bx, by, bw, bh, AXIS_GREY);
        for (k, &(s, &color)) in entries.iter().enumerate() {
            let y = by + 4 + k as i64 * 14;
            c.line_dashed(bx + 8, y + 4, bx + 30, y + 4, color, 2, s.dashed.then_some((6, 4)), &mut 0);
            c.text(bx + 36, y + 1, &s.label, BLACK, 1);
        }
    }
    Ok(c)
}

/// Tiles `canvases` row by row, `columns` per row (at least 1), in cells as large as the
/// largest canvas; unused space stays white. No canvases give a 1 × 1 white canvas.
pub fn grid(canvases: Vec<Canvas>, columns: usize) -> Canvas {
    if canvases.is_empty() {
        return Canvas::new(1, 1);
    }
    let cols = columns.clamp(1, canvases.len());
    let (cw, ch) = canvases.iter().fold((1, 1), |(w, h), c| (w.max(c.width), h.max(c.height)));
    let rows = canvases.len().div_ceil(cols);
    let mut out = Canvas::new(cw.saturating_mul(cols), ch.saturating_mul(rows));
    for (i, c) in canvases.iter().enumerate() {
        out.blit(c, ((i % cols) * cw) as i64, ((i / cols) * ch) as i64);
    }
    out
}

/// The built-in font: printable ASCII 32..=126, 8 rows of 5 pixels each (bit 4 = leftmost
/// column); rows 0..=6 sit on the baseline, row 7 holds descenders.
#[rustfmt::skip]
const FONT: [[u8; 8]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // space
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00], // !
    [0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00], // "
    [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00], // #
    [0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00], // $
    [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00], // %
    [0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00], // &
    [0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00], // '
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00], // (
    [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00], // )
    [0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00], // *
    [0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00], // +
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08], // ,
    [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00], // -
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00], // .
    [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10, 0x00], // /
    [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00], // 0
    [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00], // 1
    [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00], // 2
    [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00], // 3
    [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00], // 4
    [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00], // 5
    [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00], // 6
    [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00], // 7
    [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00], // 8
    [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00], // 9
    [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00], // :
    [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08, 0x00], // ;
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00], // <
    [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00], // =
    [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00], // >
    [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00], // ?
    [0x0e, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0e, 0x00], // @
    [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00], // A
    [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00], // B
    [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00], // C
    [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00], // D
    [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00], // E
    [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00], // F
    [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00], // G
    [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00], // H
    [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00], // I
    [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00], // J
    [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00], // K
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00], // L
    [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00], // M
    [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00], // N
    [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00], // O
    [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00], // P
    [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00], // Q
    [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00], // R
    [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00], // S
    [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00], // T
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00], // U
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00], // V
    [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00], // W
    [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00], // X
    [0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04, 0x00], // Y
    [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00], // Z
    [0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00], // [
    [0x10, 0x10, 0x08, 0x04, 0x02, 0x01, 0x01, 0x00], // \
    [0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00], // ]
    [0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00], // ^
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f], // _
    [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00], // `
    [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00], // a
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00], // b
    [0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00], // c
    [0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00], // d
    [0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00], // e
    [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00], // f
    [0x00, 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e], // g
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00], // h
    [0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00], // i
    [0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0c], // j
    [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00], // k
    [0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00], // l
    [0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11, 0x00], // m
    [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00], // n
    [0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00], // o
    [0x00, 0x00, 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10], // p
    [0x00, 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x01], // q
    [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00], // r
    [0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e, 0x00], // s
    [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00], // t
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00], // u
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00], // v
    [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00], // w
    [0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00], // x
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e], // y
    [0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00], // z
    [0x03, 0x04, 0x04, 0x08, 0x04, 0x04, 0x03, 0x00], // {
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00], // |
    [0x18, 0x04, 0x04, 0x02, 0x04, 0x04, 0x18, 0x00], // }
    [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00], // ~
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_png(name: &str) -> std::path::PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("enma-plot-{}-{n}-{name}.png", std::process::id()))
    }

    fn luminance(c: [u8; 3]) -> f32 {
        0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32
    }

    fn panel(data: &[f32], rows: usize, cols: usize, diverging: bool) -> Heatmap<'_> {
        let (title, x_label, y_label) = ("panel".into(), "x".into(), "t".into());
        Heatmap { title, data, rows, cols, x_label, y_label, diverging, range: None }
    }

    fn series(label: &str, x: Vec<f32>, y: Vec<f32>) -> Series {
        Series { label: label.into(), x, y, ..Default::default() }
    }

    #[test]
    fn png_round_trip() {
        let n = 50;
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let y: Vec<f32> = x.iter().map(|v| (-v / 10.0).exp()).collect();
        let band = (y.iter().map(|v| v * 0.5).collect(), y.iter().map(|v| v * 2.0).collect());
        let mut s = series("mean", x.clone(), y);
        s.band = Some(band);
        let plot = LinePlot { title: "Loss".into(), series: vec![s], log_y: true, ..Default::default() };
        let canvas = lines(&plot).unwrap();
        let path = temp_png("roundtrip");
        canvas.save_png(&path).unwrap();
        assert!(!path.with_extension("png.tmp").exists());
        let mut reader = png::Decoder::new(BufReader::new(File::open(&path).unwrap())).read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (720, 440));
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&buf[..info.buffer_size()], canvas.pixels());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn save_into_missing_directory_is_io_error() {
        let path = std::env::temp_dir().join("enma-plot-no-such-dir-4711").join("x.png");
        assert!(matches!(Canvas::new(2, 2).save_png(&path), Err(Error::Io { .. })));
    }

    #[test]
    fn colour_maps() {
        let (lo, hi) = (viridis(0.0), viridis(1.0));
        assert!(lo[2] > lo[1] && lo[0] > lo[1] && luminance(lo) < 40.0, "{lo:?}");
        assert!(hi[0] > 200 && hi[1] > 200 && hi[2] < 80, "{hi:?}");
        let lum: Vec<f32> = (0..=200).map(|i| luminance(viridis(i as f32 / 200.0))).collect();
        assert!(lum.windows(2).all(|w| w[1] >= w[0]), "viridis luminance is not monotone");
        assert!(diverging(0.5).iter().all(|&c| c >= 240));
        assert!(diverging(0.0)[2] > diverging(0.0)[0] && diverging(1.0)[0] > diverging(1.0)[2]);
        assert_eq!((viridis(f32::NAN), diverging(f32::NAN)), (NAN_GREY, NAN_GREY));
        assert_eq!((viridis(-3.0), viridis(7.0)), (lo, hi));
    }

    #[test]
    fn heatmap_ramp_puts_min_at_its_cell() {
        let (rows, cols) = (4, 5);
        let data: Vec<f32> = (0..rows * cols).map(|i| (rows * cols - 1 - i) as f32).collect(); // min at (3, 4)
        let p = panel(&data, rows, cols, false);
        let (c, (ix, iy, pw, ph)) = heatmap_panel(&p).unwrap();
        assert!(pw >= 200 && ph >= 200);
        let mut darkest = (f32::MAX, 0, 0);
        for y in iy..iy + ph {
            for x in ix..ix + pw {
                let l = luminance(c.get(x, y).unwrap());
                if l < darkest.0 {
                    darkest = (l, x, y);
                }
            }
        }
        let cell = ((darkest.2 - iy) as usize * rows / ph as usize, (darkest.1 - ix) as usize * cols / pw as usize);
        assert_eq!(cell, (3, 4));
        assert_eq!(c.get(ix + pw - 1, iy + ph - 1), Some(viridis(0.0)));
        assert_eq!(c.get(ix, iy), Some(viridis(1.0)));
        let full = heatmaps(&[p.clone(), Heatmap { diverging: true, ..p }], "two").unwrap();
        assert!(full.width() >= 2 * c.width());
    }

    #[test]
    fn diverging_heatmap_is_symmetric_and_nan_is_grey() {
        let data = [-1.0, 0.5, f32::NAN, 0.0];
        let p = panel(&data, 2, 2, true);
        let (c, (ix, iy, pw, ph)) = heatmap_panel(&p).unwrap();
        assert_eq!(c.get(ix, iy), Some(diverging(0.0)));
        assert_eq!(c.get(ix + pw - 1, iy), Some(diverging(0.75)));
        assert_eq!(c.get(ix, iy + ph - 1), Some(NAN_GREY));
        assert_eq!(c.get(ix + pw - 1, iy + ph - 1), Some(diverging(0.5)));
        let all_nan = [f32::NAN; 6];
        assert!(heatmaps(&[Heatmap { data: &all_nan, rows: 2, cols: 3, diverging: false, ..p }], "").is_ok());
    }

    #[test]
    fn heatmap_bad_input_is_an_error() {
        let data = [1.0; 6];
        let ok = panel(&data, 2, 3, false);
        assert!(heatmaps(&[], "t").is_err());
        assert!(heatmaps(&[Heatmap { rows: 3, ..ok.clone() }], "t").is_err());
        assert!(heatmaps(&[Heatmap { rows: 0, cols: 0, data: &[], ..ok.clone() }], "t").is_err());
        assert!(heatmaps(&[Heatmap { range: Some((1.0, 1.0)), ..ok.clone() }], "t").is_err());
        assert!(heatmaps(&[Heatmap { range: Some((0.0, f32::NAN)), ..ok.clone() }], "t").is_err());
        let big = vec![0.5; 1000 * 3];
        let (_, (_, _, pw, ph)) = heatmap_panel(&Heatmap { data: &big, rows: 1000, ..ok }).unwrap();
        assert_eq!((pw, ph), (201, 512));
    }

    #[test]
    fn text_stays_in_its_box() {
        for scale in [1, 2] {
            let mut c = Canvas::new(120, 40);
            let s = "Ag,y0.5e-3 (%)";
            let (w, h) = text_size(s, scale);
            c.text(7, 5, s, BLACK, scale);
            let mut inside = 0;
            for y in 0..40 {
                for x in 0..120 {
                    let lit = c.get(x, y) != Some(WHITE);
                    let in_box = (7..7 + w as i64).contains(&x) && (5..5 + h as i64).contains(&y);
                    assert!(!lit || in_box, "pixel ({x}, {y}) outside the text box");
                    inside += lit as usize;
                }
            }
            assert!(inside > 20 * scale as usize);
        }
        let mut c = Canvas::new(20, 60);
        c.text_up(2, 3, "abc", BLACK, 1);
        let (w, h) = text_size("abc", 1);
        let lit: Vec<_> =
            (0..60).flat_map(|y| (0..20).map(move |x| (x, y))).filter(|&(x, y)| c.get(x, y) != Some(WHITE)).collect();
        assert!(!lit.is_empty());
        assert!(lit.iter().all(|&(x, y)| (2..2 + h as i64).contains(&x) && (3..3 + w as i64).contains(&y)));
    }

    #[test]
    fn lines_clip_and_dashes() {
        let mut c = Canvas::new(50, 50);
        c.line(-1_000_000_000_000, 25, 1_000_000_000_000, 25, BLACK, 1);
        assert!((0..50).all(|x| c.get(x, 25) == Some(BLACK)));
        c.line(0, 0, 49, 49, BLACK, 2);
        assert_eq!(c.get(10, 10), Some(BLACK));
        c.fill_rect(i64::MIN, i64::MIN, i64::MAX, i64::MAX, WHITE);
    }

    #[test]
    fn lines_reject_bad_input() {
        let bad = LinePlot { series: vec![series("a", vec![1.0, 2.0], vec![1.0])], ..Default::default() };
        assert!(lines(&bad).is_err());
        let mut s = series("a", vec![1.0, 2.0], vec![1.0, 2.0]);
        s.band = Some((vec![0.0], vec![1.0, 2.0]));
        assert!(lines(&LinePlot { series: vec![s], ..Default::default() }).is_err());
        assert!(lines(&LinePlot::default()).is_err());
        let nan = series("nan", vec![f32::NAN; 3], vec![f32::NAN; 3]);
        assert!(lines(&LinePlot { series: vec![nan], ..Default::default() }).is_err());
    }

    #[test]
    fn nan_and_odd_data_do_not_panic() {
        let x = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let y = vec![1.0, f32::NAN, 3.0, f32::INFINITY, 2.0, 2.0];
        let mut s = series("partly NaN", x, y.clone());
        s.band = Some((vec![f32::NAN; 6], y));
        s.dashed = true;
        let flat = series("", vec![2.0; 3], vec![7.0; 3]);
        let single = series("one", vec![1.5], vec![f32::MAX]);
        let plot = LinePlot { series: vec![s, flat, single], ..Default::default() };
        assert!(lines(&plot).is_ok());
        let plot = LinePlot { log_y: true, ..plot };
        assert!(lines(&plot).is_ok());
    }

    #[test]
    fn log_y_ignores_non_positive_values() {
        let s = series("loss", vec![0.0, 1.0, 2.0, 3.0, 4.0], vec![1.0, 0.0, -5.0, 0.01, 100.0]);
        let plot = LinePlot { series: vec![s], log_y: true, ..Default::default() };
        let (_, (y0, y1)) = data_bounds(&plot).unwrap();
        assert!((y0 + 2.0).abs() < 1e-6 && (y1 - 2.0).abs() < 1e-6, "{y0} {y1}");
        assert!(lines(&plot).is_ok());
        let neg = series("neg", vec![0.0, 1.0], vec![0.0, -1.0]);
        assert!(lines(&LinePlot { series: vec![neg], log_y: true, ..Default::default() }).is_err());
    }

    #[test]
    fn tick_labels_are_compact() {
        let labels = |a: Axis| a.ticks.into_iter().map(|(_, s)| s).collect::<Vec<_>>();
        assert_eq!(labels(linear_axis(0.0, 2.0)), ["0", "0.5", "1", "1.5", "2"]);
        assert_eq!(labels(linear_axis(0.0, 118.0)), ["0", "20", "40", "60", "80", "100", "120"]);
        assert_eq!(labels(linear_axis(0.0, 0.004)), ["0", "1e-3", "2e-3", "3e-3", "4e-3"]);
        assert_eq!(labels(log_axis(-3.0, 0.5)), ["1e-3", "0.01", "0.1", "1", "10"]);
        assert_eq!(fmt_sig(0.012345), "0.0123");
        assert_eq!(fmt_sig(-123456.0), "-1.23e5");
    }

    #[test]
    fn grid_tiles_canvases() {
        let mut a = Canvas::new(10, 20);
        a.set(0, 0, BLACK);
        let mut b = Canvas::new(30, 5);
        b.set(0, 0, BLACK);
        let g = grid(vec![a.clone(), b, a], 2);
        assert_eq!((g.width(), g.height()), (60, 40));
        assert_eq!((g.get(0, 0), g.get(30, 0), g.get(0, 20)), (Some(BLACK), Some(BLACK), Some(BLACK)));
        assert_eq!((grid(Vec::new(), 3).width(), grid(Vec::new(), 0).height()), (1, 1));
    }
}
