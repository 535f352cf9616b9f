//! A TrueType font whose glyphs draw nothing, for the invisible text layer of searchable PDFs
//! (docs/formats.md, "Searchable PDF"). The layer's text is never painted (render mode 3), so the
//! glyph shapes do not matter; what a reader needs is an embedded font program and the ToUnicode
//! map beside it. Every character code is drawn with glyph 1, half an em wide and empty.
//!
//! Written by hand (about 350 bytes) from the TrueType tables a font program needs: `cmap`,
//! `glyf`, `head`, `hhea`, `hmtx`, `loca`, `maxp`, `name`, `post`.

/// Units per em of the font.
pub const UNITS_PER_EM: u16 = 1000;
/// Advance of every glyph, in font units (half an em).
pub const ADVANCE: u16 = 500;
/// The PostScript name.
pub const FONT_NAME: &str = "DsocrGlyphless";

fn be16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn be32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The TrueType checksum of a table: the sum of its big-endian 32-bit words, zero-padded.
fn checksum(data: &[u8]) -> u32 {
    data.chunks(4).fold(0u32, |sum, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        sum.wrapping_add(u32::from_be_bytes(w))
    })
}

fn head() -> Vec<u8> {
    let mut t = Vec::new();
    be32(&mut t, 0x0001_0000); // version
    be32(&mut t, 0x0001_0000); // fontRevision
    be32(&mut t, 0); // checkSumAdjustment, set once the whole font is known
    be32(&mut t, 0x5F0F_3CF5); // magicNumber
    be16(&mut t, 0x000B); // flags: baseline at y=0, lsb at x=0, integer scaling
    be16(&mut t, UNITS_PER_EM);
    t.extend_from_slice(&[0; 16]); // created, modified
    for v in [0u16, 0, ADVANCE, UNITS_PER_EM] {
        be16(&mut t, v); // xMin, yMin, xMax, yMax
    }
    be16(&mut t, 0); // macStyle
    be16(&mut t, 8); // lowestRecPPEM
    be16(&mut t, 2); // fontDirectionHint
    be16(&mut t, 0); // indexToLocFormat: short offsets
    be16(&mut t, 0); // glyphDataFormat
    t
}

fn hhea() -> Vec<u8> {
    let mut t = Vec::new();
    be32(&mut t, 0x0001_0000);
    be16(&mut t, 800); // ascender
    be16(&mut t, (-200i16) as u16); // descender
    be16(&mut t, 0); // lineGap
    be16(&mut t, ADVANCE); // advanceWidthMax
    t.extend_from_slice(&[0; 6]); // minLeftSideBearing, minRightSideBearing, xMaxExtent
    be16(&mut t, 1); // caretSlopeRise
    t.extend_from_slice(&[0; 4]); // caretSlopeRun, caretOffset
    t.extend_from_slice(&[0; 8]); // reserved
    be16(&mut t, 0); // metricDataFormat
    be16(&mut t, 2); // numberOfHMetrics
    t
}

fn maxp() -> Vec<u8> {
    let mut t = Vec::new();
    be32(&mut t, 0x0001_0000);
    be16(&mut t, 2); // numGlyphs
    for v in [0u16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0] {
        be16(&mut t, v); // points, contours, composite points/contours, zones (2), the rest 0
    }
    t
}

fn hmtx() -> Vec<u8> {
    let mut t = Vec::new();
    for _ in 0..2 {
        be16(&mut t, ADVANCE);
        be16(&mut t, 0);
    }
    t
}

/// Format 4 with the one segment every cmap must end with (no character maps to a glyph here:
/// the PDF maps codes to glyph 1 through its CIDToGIDMap).
fn cmap() -> Vec<u8> {
    let mut t = Vec::new();
    for v in [0u16, 1, 3, 1] {
        be16(&mut t, v); // version, numTables, platform (Windows), encoding (Unicode BMP)
    }
    be32(&mut t, 12); // subtable offset
    for v in [4u16, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1, 0] {
        be16(&mut t, v); // format, length, language, segCountX2, searchRange, entrySelector,
        // rangeShift, endCode, reservedPad, startCode, idDelta, idRangeOffset
    }
    t
}

fn name() -> Vec<u8> {
    let records: [(u16, &str); 4] = [(1, FONT_NAME), (2, "Regular"), (4, FONT_NAME), (6, FONT_NAME)];
    let strings: Vec<Vec<u8>> = records.iter().map(|(_, s)| s.encode_utf16().flat_map(u16::to_be_bytes).collect()).collect();
    let mut t = Vec::new();
    be16(&mut t, 0); // format
    be16(&mut t, records.len() as u16);
    be16(&mut t, (6 + 12 * records.len()) as u16); // stringOffset
    let mut offset = 0u16;
    for ((id, _), s) in records.iter().zip(&strings) {
        for v in [3u16, 1, 0x0409, *id, s.len() as u16, offset] {
            be16(&mut t, v);
        }
        offset += s.len() as u16;
    }
    strings.iter().for_each(|s| t.extend_from_slice(s));
    t
}

fn post() -> Vec<u8> {
    let mut t = Vec::new();
    be32(&mut t, 0x0003_0000); // version 3: no glyph names
    be32(&mut t, 0); // italicAngle
    be16(&mut t, (-100i16) as u16); // underlinePosition
    be16(&mut t, 50); // underlineThickness
    be32(&mut t, 1); // isFixedPitch
    t.extend_from_slice(&[0; 16]); // memory usage hints
    t
}

/// The font program (an `sfnt` with TrueType outlines).
pub fn glyphless_ttf() -> Vec<u8> {
    // Tables sorted by tag, as the directory requires. Both glyphs are empty: every `loca` entry 0.
    let tables: [(&[u8; 4], Vec<u8>); 9] = [
        (b"cmap", cmap()),
        (b"glyf", Vec::new()),
        (b"head", head()),
        (b"hhea", hhea()),
        (b"hmtx", hmtx()),
        (b"loca", vec![0; 6]),
        (b"maxp", maxp()),
        (b"name", name()),
        (b"post", post()),
    ];
    let n = tables.len() as u16;
    let pow2 = 1u16 << (15 - n.leading_zeros() as u16); // largest power of two ≤ n
    let mut font = Vec::new();
    be32(&mut font, 0x0001_0000);
    for v in [n, pow2 * 16, pow2.trailing_zeros() as u16, n * 16 - pow2 * 16] {
        be16(&mut font, v);
    }
    let mut offset = 12 + 16 * tables.len();
    let mut head_at = 0;
    for (tag, data) in &tables {
        if *tag == b"head" {
            head_at = offset;
        }
        font.extend_from_slice(*tag);
        be32(&mut font, checksum(data));
        be32(&mut font, offset as u32);
        be32(&mut font, data.len() as u32);
        offset += data.len().div_ceil(4) * 4;
    }
    for (_, data) in &tables {
        font.extend_from_slice(data);
        font.resize(font.len().div_ceil(4) * 4, 0);
    }
    let adjustment = 0xB1B0_AFBAu32.wrapping_sub(checksum(&font));
    font[head_at + 8..head_at + 12].copy_from_slice(&adjustment.to_be_bytes());
    font
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_font_is_a_consistent_sfnt() {
        let font = glyphless_ttf();
        assert_eq!(&font[..4], &[0, 1, 0, 0]);
        let tables = u16::from_be_bytes([font[4], font[5]]) as usize;
        assert_eq!(tables, 9);
        // Every table's recorded checksum matches its bytes; the whole font sums to the magic.
        for r in 0..tables {
            let rec = &font[12 + 16 * r..28 + 16 * r];
            let (sum, off, len) = (
                u32::from_be_bytes(rec[4..8].try_into().unwrap()),
                u32::from_be_bytes(rec[8..12].try_into().unwrap()) as usize,
                u32::from_be_bytes(rec[12..16].try_into().unwrap()) as usize,
            );
            assert_eq!(off % 4, 0);
            let mut data = font[off..off + len].to_vec();
            if &rec[..4] == b"head" {
                data[8..12].fill(0);
            }
            assert_eq!(checksum(&data), sum, "{}", String::from_utf8_lossy(&rec[..4]));
        }
        assert_eq!(checksum(&font), 0xB1B0_AFBA);
    }
}
