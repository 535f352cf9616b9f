//! Resolution modes (docs/model.md §3.2, docs/model-ocr2.md §3): the official presets of each architecture and
//! custom sizes.

use std::fmt;
use std::str::FromStr;

use crate::{Architecture, PreprocessError};

/// SAM patch size in pixels.
pub const PATCH_SIZE: usize = 16;
/// Spatial down-sampling of the SAM neck + compressor (two stride-2 convs).
pub const DOWNSAMPLE_RATIO: usize = 4;
/// Tile size of DeepSeek-OCR's cropping mode (DeepSeek-OCR 2: 768, [`Architecture::crop_size`]).
pub const TILE_SIZE: usize = 640;
/// Fewest tiles when an image is cut (official `MIN_CROPS`).
pub const MIN_TILES: usize = 2;
/// Most tiles by default: 9, the Hugging Face `infer()` default. The vLLM scripts use 6.
pub const DEFAULT_MAX_TILES: usize = 9;
/// Most tiles in the official vLLM scripts (`MAX_CROPS`).
pub const VLLM_MAX_TILES: usize = 6;

/// One of the official resolution presets, named as DeepSeek-OCR's. [`Mode::spec_for`] gives the
/// preset of an architecture: DeepSeek-OCR 2 has three (docs/model-ocr2.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// 512×512, direct resize (aspect not kept), 73 image tokens.
    Tiny,
    /// 640×640, direct resize (aspect not kept), 111 image tokens. DeepSeek-OCR 2: 768×768, 145.
    Small,
    /// 1024×1024 letterbox, 273 image tokens. DeepSeek-OCR 2: 257.
    Base,
    /// 1280×1280 letterbox, 421 image tokens.
    Large,
    /// 1024 global view plus 640×640 tiles (the official default). In DeepSeek-OCR 2 the
    /// "dynamic" mode: 1024 global view plus 2-6 crops of 768×768.
    #[default]
    Gundam,
}

impl Mode {
    /// Every preset, smallest first.
    pub const ALL: [Mode; 5] = [Mode::Tiny, Mode::Small, Mode::Base, Mode::Large, Mode::Gundam];

    /// The preset's sizes.
    pub fn spec(self) -> ModeSpec {
        let (base_size, image_size, crop) = match self {
            Mode::Tiny => (512, 512, false),
            Mode::Small => (640, 640, false),
            Mode::Base => (1024, 1024, false),
            Mode::Large => (1280, 1280, false),
            Mode::Gundam => (1024, TILE_SIZE, true),
        };
        ModeSpec { base_size, image_size, crop, min_tiles: MIN_TILES, max_tiles: DEFAULT_MAX_TILES, arch: Architecture::DeepseekOcr }
    }

    /// The preset for a checkpoint of `arch`. DeepSeek-OCR 2's encoder takes only 768- and
    /// 1024-pixel views, so it has three presets: `gundam` (its official "dynamic" mode: a 1024
    /// global view and 2-6 crops of 768), `base` (one 1024 view, letterboxed) and `small` (one
    /// 768 view, squashed); `tiny` and `large` are refused.
    pub fn spec_for(self, arch: Architecture) -> Result<ModeSpec, PreprocessError> {
        match arch {
            Architecture::DeepseekOcr => Ok(self.spec()),
            Architecture::DeepseekOcr2 => {
                let (base_size, image_size, crop) = match self {
                    Mode::Gundam => (1024, 768, true),
                    Mode::Base => (1024, 1024, false),
                    Mode::Small => (768, 768, false),
                    Mode::Tiny | Mode::Large => {
                        return Err(PreprocessError::InvalidMode(format!(
                            "{arch} has no {self} mode (its encoder reads 768- and 1024-pixel views only); use gundam (also called dynamic), base or small"
                        )));
                    }
                };
                Ok(ModeSpec { base_size, image_size, crop, min_tiles: MIN_TILES, max_tiles: VLLM_MAX_TILES, arch })
            }
        }
    }

    /// Lower-case name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tiny => "tiny",
            Mode::Small => "small",
            Mode::Base => "base",
            Mode::Large => "large",
            Mode::Gundam => "gundam",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = PreprocessError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("dynamic") {
            // DeepSeek-OCR 2's name for its cropping mode.
            return Ok(Mode::Gundam);
        }
        Mode::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            PreprocessError::InvalidMode(format!("unknown mode {s:?}; expected one of tiny, small, base, large, gundam (or dynamic)"))
        })
    }
}

/// Sizes that define how an image becomes encoder views, as the official `base_size`,
/// `image_size` and `crop_mode`, plus the tile-count limits of the cropping mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModeSpec {
    /// Side of the global view in cropping mode (`base_size`).
    pub base_size: usize,
    /// Side of the tiles in cropping mode, or of the single view otherwise (`image_size`).
    pub image_size: usize,
    /// Cut large images into tiles (`crop_mode`).
    pub crop: bool,
    /// Fewest tiles when cutting (2 in the official code).
    pub min_tiles: usize,
    /// Most tiles when cutting (9 for Hugging Face `infer()`, 6 for the vLLM scripts and for
    /// DeepSeek-OCR 2).
    pub max_tiles: usize,
    /// The checkpoint the views are for: it decides the squash rule, the sizes allowed and the
    /// token layout.
    pub arch: Architecture,
}

impl From<Mode> for ModeSpec {
    fn from(m: Mode) -> Self {
        m.spec()
    }
}

impl ModeSpec {
    /// A custom DeepSeek-OCR mode. Sizes must be positive multiples of 64 (one vision token per
    /// 64×64 pixels).
    pub fn custom(base_size: usize, image_size: usize, crop: bool) -> Result<Self, PreprocessError> {
        Self::custom_for(Architecture::DeepseekOcr, base_size, image_size, crop)
    }

    /// A custom mode for `arch` (the official `base_size`, `image_size`, `crop_mode`), with the
    /// architecture's tile limit (9 for DeepSeek-OCR's Hugging Face code, 6 for DeepSeek-OCR 2).
    pub fn custom_for(arch: Architecture, base_size: usize, image_size: usize, crop: bool) -> Result<Self, PreprocessError> {
        let max_tiles = match arch {
            Architecture::DeepseekOcr => DEFAULT_MAX_TILES,
            Architecture::DeepseekOcr2 => VLLM_MAX_TILES,
        };
        let spec = ModeSpec { base_size, image_size, crop, min_tiles: MIN_TILES, max_tiles, arch };
        spec.validate()?;
        Ok(spec)
    }

    /// This mode for a checkpoint of `arch`. A preset of the other architecture becomes the same
    /// preset of `arch` ([`Mode::spec_for`]; the tile limit kept where it is lower), so that the
    /// default options run on either checkpoint; a custom mode that `arch` cannot run is an error.
    pub fn for_architecture(self, arch: Architecture) -> Result<Self, PreprocessError> {
        if self.arch == arch {
            return Ok(self);
        }
        let same_sizes = |s: &ModeSpec| (s.base_size, s.image_size, s.crop) == (self.base_size, self.image_size, self.crop);
        let preset = Mode::ALL.into_iter().find(|m| m.spec_for(self.arch).is_ok_and(|s| same_sizes(&s))).ok_or_else(|| {
            PreprocessError::InvalidMode(format!(
                "the custom mode base {} / image {} (crop {}) was made for {}; give a mode for {arch}",
                self.base_size, self.image_size, self.crop, self.arch
            ))
        })?;
        let mut spec = preset.spec_for(arch)?;
        spec.max_tiles = spec.max_tiles.min(self.max_tiles).max(spec.min_tiles);
        Ok(spec)
    }

    /// The same mode with another tile limit (e.g. [`VLLM_MAX_TILES`] for the vLLM behaviour).
    pub fn with_max_tiles(mut self, max_tiles: usize) -> Result<Self, PreprocessError> {
        self.max_tiles = max_tiles;
        self.validate()?;
        Ok(self)
    }

    /// Check the sizes and tile limits.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let unit = PATCH_SIZE * DOWNSAMPLE_RATIO;
        for (name, v) in [("base size", self.base_size), ("image size", self.image_size)] {
            if v == 0 || !v.is_multiple_of(unit) || v > 4096 {
                return Err(PreprocessError::InvalidMode(format!("{name} {v} must be a positive multiple of {unit} and at most 4096")));
            }
        }
        if let Some(sizes) = self.arch.view_sizes() {
            let crop_size = self.arch.crop_size();
            if !sizes.contains(&self.global_size()) || (self.crop && self.image_size != crop_size) {
                return Err(PreprocessError::InvalidMode(format!(
                    "{} reads views of {sizes:?} pixels only, crops of {crop_size}: base size {} / image size {} (crop {}) cannot run; use the gundam (dynamic), base or small mode",
                    self.arch, self.base_size, self.image_size, self.crop
                )));
            }
        }
        if self.crop && (self.min_tiles == 0 || self.max_tiles < self.min_tiles || self.max_tiles > 64) {
            return Err(PreprocessError::InvalidMode(format!(
                "tile limits {}..={} must satisfy 1 <= min <= max <= 64",
                self.min_tiles, self.max_tiles
            )));
        }
        Ok(())
    }

    /// The view side that the global view is padded to: `base_size` when cropping, else
    /// `image_size` (equal in the official non-cropping presets).
    pub fn global_size(&self) -> usize {
        if self.crop { self.base_size } else { self.image_size }
    }

    /// Whether the non-cropping path squashes the image to a square before padding (official:
    /// `image_size <= 640`, i.e. Tiny and Small; DeepSeek-OCR 2: `<= 768`).
    pub fn squashes(&self) -> bool {
        !self.crop && self.image_size <= self.arch.squash_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.name().parse::<Mode>().unwrap(), m);
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!("GUNDAM".parse::<Mode>().unwrap(), Mode::Gundam);
        let err = "huge".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("huge") && err.contains("gundam"), "{err}");
    }

    #[test]
    fn custom_sizes_are_checked() {
        assert!(ModeSpec::custom(1024, 640, true).is_ok());
        assert!(ModeSpec::custom(1000, 640, true).is_err());
        assert!(ModeSpec::custom(0, 640, false).is_err());
        assert!(Mode::Gundam.spec().with_max_tiles(1).is_err());
        assert_eq!(Mode::Gundam.spec().with_max_tiles(VLLM_MAX_TILES).unwrap().max_tiles, 6);
    }

    #[test]
    fn ocr2_presets_and_limits() {
        let ocr2 = Architecture::DeepseekOcr2;
        let dynamic = Mode::Gundam.spec_for(ocr2).unwrap();
        assert_eq!((dynamic.base_size, dynamic.image_size, dynamic.crop, dynamic.max_tiles), (1024, 768, true, 6));
        assert_eq!("dynamic".parse::<Mode>().unwrap(), Mode::Gundam);
        assert!(Mode::Small.spec_for(ocr2).unwrap().squashes());
        assert!(!Mode::Base.spec_for(ocr2).unwrap().squashes());
        let e = Mode::Tiny.spec_for(ocr2).unwrap_err().to_string();
        assert!(e.contains("DeepSeek-OCR 2") && e.contains("tiny"), "{e}");
        // The encoder has queries for 768 and 1024 views only; crops are 768.
        assert!(ModeSpec::custom_for(ocr2, 1024, 640, true).is_err());
        assert!(ModeSpec::custom_for(ocr2, 1280, 1280, false).is_err());
        assert!(ModeSpec::custom_for(ocr2, 768, 768, true).is_ok());
        // Presets convert between the architectures; the tile limit only goes down.
        assert_eq!(Mode::Gundam.spec().for_architecture(ocr2).unwrap(), dynamic);
        let four = Mode::Gundam.spec().with_max_tiles(4).unwrap().for_architecture(ocr2).unwrap();
        assert_eq!(four.max_tiles, 4);
        assert_eq!(dynamic.for_architecture(Architecture::DeepseekOcr).unwrap().image_size, 640);
        let e = ModeSpec::custom(1024, 512, true).unwrap().for_architecture(ocr2).unwrap_err().to_string();
        assert!(e.contains("custom mode"), "{e}");
        assert!(Mode::Tiny.spec().for_architecture(ocr2).is_err());
    }
}
