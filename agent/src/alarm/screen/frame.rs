//! An in-memory 128x64 frame buffer for tests: a `DrawTarget` like the gateway's display,
//! saved to and read from PNG (each pixel as a SCALE x SCALE block, lit pixels light on
//! dark as on an OLED, so a reviewer can read the file as the driver would).

use std::convert::Infallible;
use std::io::Cursor;

use embedded_graphics::Pixel;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;

use super::{HEIGHT, Screen, WIDTH};
use crate::alarm::display::{Display, DisplayError};

/// Pixels per display pixel, each way, in the PNG files.
pub const SCALE: u32 = 4;
const LIT: u8 = 0xE8;
const DARK: u8 = 0x10;

#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    lit: Vec<bool>,
    /// Lit pixels drawn beyond the edges: text that would be cut on the display.
    pub outside: usize,
}

impl Default for Frame {
    fn default() -> Self {
        Frame {
            lit: vec![false; (WIDTH * HEIGHT) as usize],
            outside: 0,
        }
    }
}

impl Frame {
    pub fn render(screen: &Screen) -> Frame {
        let mut frame = Frame::default();
        let Ok(()) = super::draw(screen, &mut frame);
        frame
    }

    pub fn is_lit(&self, x: u32, y: u32) -> bool {
        self.lit[(y * WIDTH + x) as usize]
    }

    pub fn lit_count(&self) -> usize {
        self.lit.iter().filter(|&&p| p).count()
    }

    /// PNG bytes: 8-bit greyscale, scaled up by [`SCALE`].
    pub fn to_png(&self) -> Vec<u8> {
        let (w, h) = (WIDTH * SCALE, HEIGHT * SCALE);
        let mut data = Vec::with_capacity((w * h) as usize);
        for y in 0..h {
            for x in 0..w {
                data.push(if self.is_lit(x / SCALE, y / SCALE) {
                    LIT
                } else {
                    DARK
                });
            }
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("PNG header");
        writer.write_image_data(&data).expect("PNG data");
        writer.finish().expect("PNG end");
        out
    }

    /// Reads a PNG written by [`Frame::to_png`], sampling the centre of each block.
    pub fn from_png(bytes: &[u8]) -> Result<Frame, String> {
        let decoder = png::Decoder::new(Cursor::new(bytes));
        let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
        let mut data = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
        let info = reader.next_frame(&mut data).map_err(|e| e.to_string())?;
        let expected = (WIDTH * SCALE, HEIGHT * SCALE, png::ColorType::Grayscale);
        if (info.width, info.height, info.color_type) != expected {
            return Err(format!(
                "expected a {}x{} greyscale PNG, found {}x{} {:?}",
                expected.0, expected.1, info.width, info.height, info.color_type
            ));
        }
        let mut frame = Frame::default();
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let (px, py) = (x * SCALE + SCALE / 2, y * SCALE + SCALE / 2);
                let v = data[(py * info.width + px) as usize];
                frame.lit[(y * WIDTH + x) as usize] = v > 0x80;
            }
        }
        Ok(frame)
    }

    /// The frame as text, `#` lit and `.` dark, for a failing test's message.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                s.push(if self.is_lit(x, y) { '#' } else { '.' });
            }
            s.push('\n');
        }
        s
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({} lit)\n{}", self.lit_count(), self.to_text())
    }
}

impl OriginDimensions for Frame {
    fn size(&self) -> Size {
        Size::new(WIDTH, HEIGHT)
    }
}

impl DrawTarget for Frame {
    type Color = BinaryColor;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<BinaryColor>>,
    {
        for Pixel(p, color) in pixels {
            if (0..WIDTH as i32).contains(&p.x) && (0..HEIGHT as i32).contains(&p.y) {
                self.lit[(p.y as u32 * WIDTH + p.x as u32) as usize] = color.is_on();
            } else if color.is_on() {
                self.outside += 1;
            }
        }
        Ok(())
    }
}

impl Display for Frame {
    fn show(&mut self, screen: &Screen) -> Result<(), DisplayError> {
        *self = Frame::render(screen);
        Ok(())
    }
}
