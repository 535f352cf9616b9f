//! Fonts for text whose font the PDF does not embed: the renderer's built-in standard fonts, and a
//! Noto CJK font for Chinese, Japanese and Korean CID fonts: the one the caller names
//! ([`CjkFont::load`], the CLI's `--cjk-font`), else a system one when installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use hayro::hayro_interpret::font::{FontData, FontQuery};
use hayro::hayro_interpret::hayro_cmap::CidFamily;

use crate::PdfError;

/// Where Debian/Ubuntu/Fedora/Arch put Noto CJK (the .ttc holds JP, KR, SC, TC, HK faces).
const CJK_CANDIDATES: [&str; 6] = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
];

/// A font used for CJK text that a PDF does not embed. From a collection (`.ttc`) the face is
/// taken by Noto CJK's order (0 Japanese, 1 Korean, 2 Simplified Chinese, 3 Traditional
/// Chinese); a single font (`.otf`, `.ttf`) serves every script with its one face.
/// Cheap to clone: the file is read once and shared.
#[derive(Clone)]
pub struct CjkFont {
    data: FontData,
    path: PathBuf,
    /// Faces in the file: a collection's (`.ttc`) count, 1 for a single font.
    faces: u32,
}

impl std::fmt::Debug for CjkFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CjkFont").field("path", &self.path).finish()
    }
}

impl CjkFont {
    /// Read a font file (`.ttc`, `.otf`, `.ttf`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PdfError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|error| PdfError::Io { path: path.clone(), error })?;
        if !looks_like_font(&bytes) {
            return Err(PdfError::Font(format!(
                "{} is not a TrueType/OpenType font or collection: give a .ttc/.otf/.ttf file such as NotoSansCJK-Regular.ttc",
                path.display()
            )));
        }
        let faces = face_count(&bytes);
        Ok(CjkFont { data: Arc::new(bytes), path, faces })
    }

    /// The first installed Noto CJK collection of the usual system places, read once per process
    /// (the file is ≈ 20 MB: a server opening many PDFs must not read it per document), and only
    /// when a page first needs it.
    pub fn system() -> Option<&'static Self> {
        static SYSTEM: OnceLock<Option<CjkFont>> = OnceLock::new();
        SYSTEM.get_or_init(|| CJK_CANDIDATES.iter().map(Path::new).filter(|p| p.is_file()).find_map(|p| CjkFont::load(p).ok())).as_ref()
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A collection's face count (the `ttcf` header's big-endian u32 at byte 8); 1 for a single font.
fn face_count(bytes: &[u8]) -> u32 {
    match bytes.get(..12) {
        Some(head) if head.starts_with(b"ttcf") => u32::from_be_bytes([head[8], head[9], head[10], head[11]]).max(1),
        _ => 1,
    }
}

/// The magic numbers of a font collection (`ttcf`), OpenType-CFF (`OTTO`), TrueType (1.0 or `true`).
fn looks_like_font(bytes: &[u8]) -> bool {
    matches!(bytes.get(..4), Some(b"ttcf" | b"OTTO" | b"true" | [0, 1, 0, 0]))
}

/// Which pages needed a CJK font that was not available.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FontReport {
    /// 1-based page numbers.
    pub pages_missing_cjk_font: BTreeSet<usize>,
}

/// Where the CJK font comes from: given by the caller, or looked up on the system at first need.
pub(crate) enum CjkChoice {
    Given(CjkFont),
    System,
}

pub(crate) struct FontResolver {
    cjk: CjkChoice,
    missing: Mutex<BTreeSet<usize>>,
}

impl FontResolver {
    pub(crate) fn new(cjk: CjkChoice) -> Self {
        FontResolver { cjk, missing: Mutex::new(BTreeSet::new()) }
    }

    /// The font's data and the face to use for `face` of a Noto CJK collection: a single font
    /// (`.otf`, `.ttf`: a Japanese-only or Chinese-only face), or a collection with fewer faces
    /// than Noto CJK's, gives its first face (a face it lacks would draw nothing).
    fn cjk_data(&self, face: u32) -> Option<(FontData, u32)> {
        let font = match &self.cjk {
            CjkChoice::Given(font) => font,
            CjkChoice::System => CjkFont::system()?,
        };
        let face = if face < font.faces { face } else { 0 };
        Some((font.data.clone(), face))
    }

    /// Face index in NotoSansCJK-Regular.ttc: 0 JP, 1 KR, 2 SC, 3 TC.
    fn cjk_face(family: &CidFamily) -> Option<u32> {
        match family {
            CidFamily::AdobeJapan1 => Some(0),
            CidFamily::AdobeKorea1 => Some(1),
            CidFamily::AdobeGB1 => Some(2),
            CidFamily::AdobeCNS1 => Some(3),
            _ => None,
        }
    }

    pub(crate) fn resolver_fn(self: &Arc<Self>, page: usize) -> hayro::hayro_interpret::FontResolverFn {
        let this = self.clone();
        Arc::new(move |query: &FontQuery| match query {
            FontQuery::Standard(s) => Some(s.get_font_data()),
            FontQuery::Fallback(f) => {
                if let Some(face) = f.character_collection.as_ref().and_then(|c| Self::cjk_face(&c.family)) {
                    match this.cjk_data(face) {
                        Some(found) => return Some(found),
                        None => {
                            if this.missing.lock().unwrap().insert(page) {
                                tracing::warn!(
                                    "page {page} uses a CJK font that is not embedded and no CJK font is installed; \
                                     its text will be missing (install fonts-noto-cjk or give a font with --cjk-font)"
                                );
                            }
                        }
                    }
                }
                Some(f.pick_standard_font().get_font_data())
            }
        })
    }

    pub(crate) fn report(&self) -> FontReport {
        FontReport { pages_missing_cjk_font: self.missing.lock().unwrap().clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font(bytes: &[u8]) -> CjkFont {
        CjkFont { data: Arc::new(bytes.to_vec()), path: PathBuf::from("test"), faces: face_count(bytes) }
    }

    #[test]
    fn a_collection_gives_the_scripts_face_and_a_single_font_its_only_face() {
        // ttcf, version 2.0, 4 faces (Noto CJK's .ttc holds more).
        let collection = FontResolver::new(CjkChoice::Given(font(b"ttcf\0\x02\0\0\0\0\0\x04")));
        assert_eq!(collection.cjk_data(2).map(|(_, face)| face), Some(2));
        // A collection of two faces has no face 2 or 3.
        let pair = FontResolver::new(CjkChoice::Given(font(b"ttcf\0\x02\0\0\0\0\0\x02")));
        assert_eq!(pair.cjk_data(1).map(|(_, face)| face), Some(1));
        assert_eq!(pair.cjk_data(3).map(|(_, face)| face), Some(0));
        // A .otf/.ttf has one face: asking a Noto-collection index of it would find no font.
        let single = FontResolver::new(CjkChoice::Given(font(b"OTTO\0\x0a")));
        assert_eq!(single.cjk_data(2).map(|(_, face)| face), Some(0));
    }
}
