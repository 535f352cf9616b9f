//! Fonts for text whose font the PDF does not embed: the renderer's built-in standard fonts, and a
//! system Noto CJK font for Chinese, Japanese and Korean CID fonts when one is installed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hayro::hayro_interpret::font::{FontData, FontQuery};
use hayro::hayro_interpret::hayro_cmap::CidFamily;

/// Where Debian/Ubuntu/Fedora/Arch put Noto CJK (the .ttc holds JP, KR, SC, TC, HK faces).
const CJK_CANDIDATES: [&str; 6] = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
];

/// Which pages needed a CJK font that was not available.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FontReport {
    /// 1-based page numbers.
    pub pages_missing_cjk_font: BTreeSet<usize>,
}

pub(crate) struct FontResolver {
    cjk: Option<FontData>,
    missing: Mutex<BTreeSet<usize>>,
}

impl FontResolver {
    pub(crate) fn from_system() -> Self {
        let path = std::env::var_os("DSOCR_CJK_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(CJK_CANDIDATES.iter().map(PathBuf::from))
            .find(|p| p.is_file());
        let cjk = path.and_then(|p| std::fs::read(&p).ok()).map(|d| Arc::new(d) as FontData);
        FontResolver { cjk, missing: Mutex::new(BTreeSet::new()) }
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
                    match &this.cjk {
                        Some(data) => return Some((data.clone(), face)),
                        None => {
                            if this.missing.lock().unwrap().insert(page) {
                                tracing::warn!(
                                    "page {page} uses a CJK font that is not embedded and no CJK font is installed; \
                                     its text will be missing (install fonts-noto-cjk or set DSOCR_CJK_FONT)"
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
