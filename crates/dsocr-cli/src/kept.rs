//! Page images kept in memory for the output files (boxes drawn, figures cropped) from the moment
//! a page is loaded until its input is written, up to a budget: a long PDF at a high DPI would
//! otherwise hold every page (a 1,000-page PDF at 144 DPI is ≈ 6 GB of RGB). A page past the
//! budget is not kept; it is loaded (rendered) again when its input is written.

use std::collections::HashMap;
use std::sync::Arc;

use dsocr::preprocess::RgbImage;

/// Bytes of page images kept at most by default (≈ 340 A4 pages at 144 DPI; `--keep-images-mb`).
pub const KEPT_IMAGE_BYTES: usize = 2 << 30;

/// Page images by page tag, within a byte budget.
#[derive(Debug)]
pub struct KeptImages {
    /// Shared, so that the writer thread can read a page while it stays kept (no copy on the
    /// engine's thread).
    images: HashMap<usize, Arc<RgbImage>>,
    bytes: usize,
    budget: usize,
}

impl KeptImages {
    /// An empty store that keeps at most `budget` bytes.
    pub fn with_budget(budget: usize) -> Self {
        KeptImages { images: HashMap::new(), bytes: 0, budget }
    }

    /// Keep a copy of page `tag`'s image if it fits the budget; whether it was kept.
    pub fn keep(&mut self, tag: usize, image: &RgbImage) -> bool {
        let size = image.data.len();
        if self.bytes + size > self.budget {
            return false;
        }
        self.bytes += size;
        if let Some(old) = self.images.insert(tag, Arc::new(image.clone())) {
            self.bytes -= old.data.len();
        }
        true
    }

    /// Page `tag`'s image, if it is kept (it stays kept and counted).
    pub fn get(&self, tag: usize) -> Option<Arc<RgbImage>> {
        self.images.get(&tag).cloned()
    }

    /// Page `tag`'s image, if it was kept (and no longer counted).
    pub fn take(&mut self, tag: usize) -> Option<RgbImage> {
        let image = self.images.remove(&tag)?;
        self.bytes -= image.data.len();
        // Copied only if a reader still holds it.
        Some(Arc::try_unwrap(image).unwrap_or_else(|shared| (*shared).clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(side: usize) -> RgbImage {
        RgbImage { width: side, height: side, data: vec![255; side * side * 3] }
    }

    #[test]
    fn pages_past_the_budget_are_not_kept_and_room_comes_back_when_taken() {
        let mut kept = KeptImages::with_budget(2 * 300);
        assert!(kept.keep(0, &page(10)));
        assert!(kept.keep(1, &page(10)));
        assert!(!kept.keep(2, &page(10)), "a third page would pass the budget");
        assert_eq!(kept.take(0).map(|p| p.width), Some(10));
        assert!(kept.take(2).is_none());
        assert!(kept.keep(3, &page(10)), "the page taken made room");
        assert!(kept.take(1).is_some() && kept.take(3).is_some());
        assert_eq!(kept.bytes, 0);
    }

    #[test]
    fn a_page_read_while_kept_stays_counted_until_taken_even_if_still_read() {
        let mut kept = KeptImages::with_budget(300);
        assert!(kept.keep(7, &page(10)));
        let read = kept.get(7).expect("kept");
        assert!(!kept.keep(8, &page(10)), "the page being read still counts");
        // Taken while the reader holds it: a copy, the same pixels.
        let taken = kept.take(7).expect("kept");
        assert_eq!((taken.width, taken.data.len()), (read.width, read.data.len()));
        assert_eq!(kept.bytes, 0);
        assert!(kept.get(7).is_none() && kept.take(7).is_none());
    }
}
