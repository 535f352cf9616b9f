//! Preprocessing parity with the official code on every recorded case of `shared/parity`
//! (DeepSeek-OCR) and `shared/parity-ocr2` (DeepSeek-OCR 2): u8 views identical byte for byte, tile
//! grid, prompt ids and image mask identical.

use dsocr_preprocess::{Architecture, LoadOptions, ModeSpec, build_prompt, load_image, prepare_image};
use dsocr_testdata::{Case, Parity, parity, parity_all};

fn arch_of(fixtures: &Parity) -> Architecture {
    Architecture::from_class_name(&fixtures.class_name()).expect("a known architecture")
}

fn mode_of(arch: Architecture, case: &Case) -> ModeSpec {
    let (base, image, crop) = case.mode();
    ModeSpec::custom_for(arch, base, image, crop).unwrap()
}

fn first_mismatch(a: &[u8], b: &[u8]) -> Option<(usize, u8, u8)> {
    a.iter().zip(b).enumerate().find(|(_, (x, y))| x != y).map(|(i, (x, y))| (i, *x, *y))
}

#[test]
fn views_grid_and_prompt_match_official_code_on_every_case() {
    for fixtures in parity_all("views_grid_and_prompt_match_official_code_on_every_case") {
        check_fixtures(&fixtures);
    }
}

fn check_fixtures(fixtures: &Parity) {
    let arch = arch_of(fixtures);
    let tokenizer = tokenizers::Tokenizer::from_file(fixtures.model_dir().join("tokenizer.json")).expect("load tokenizer.json");
    for case in fixtures.cases() {
        eprintln!("{arch}: {}", case.name);
        let image = load_image(case.input_image(), &LoadOptions::default()).unwrap();
        let prepared = prepare_image(&image, &mode_of(arch, &case)).unwrap();

        let grid = case.i64("spatial_crop").data;
        assert_eq!([prepared.grid.cols as i64, prepared.grid.rows as i64], [grid[0], grid[1]], "{}: spatial_crop", case.name);

        let global = case.u8("pixel_global_u8");
        assert_eq!(prepared.global.shape().to_vec(), global.shape, "{}: global view shape", case.name);
        assert_eq!(first_mismatch(&prepared.global.data, &global.data), None, "{}: global view bytes (index, ours, reference)", case.name);

        match (&prepared.tiles, case.has("pixel_crops_u8") && prepared.grid.is_tiled()) {
            (Some(tiles), true) => {
                let crops = case.u8("pixel_crops_u8");
                assert_eq!(tiles.shape().to_vec(), crops.shape, "{}: tiles shape", case.name);
                assert_eq!(first_mismatch(&tiles.data, &crops.data), None, "{}: tile bytes", case.name);
            }
            (None, false) => {}
            (ours, theirs) => panic!("{}: tiles present here: {}, in the recording: {theirs}", case.name, ours.is_some()),
        }

        let prompt = case.json["prompt"].as_str().unwrap();
        let ids = build_prompt(&tokenizer, prompt, &[prepared.image_token_count()]).unwrap();
        let expected_ids: Vec<u32> = case.i64("input_ids").data.iter().map(|&v| v as u32).collect();
        assert_eq!(ids.input_ids, expected_ids, "{}: input_ids", case.name);
        let expected_mask: Vec<bool> = case.u8("images_seq_mask").data.iter().map(|&v| v != 0).collect();
        assert_eq!(ids.images_seq_mask, expected_mask, "{}: images_seq_mask", case.name);
        assert_eq!(ids.len() as u64, case.json["prompt_tokens"].as_u64().unwrap(), "{}: prompt length", case.name);
        assert_eq!(prepared.image_token_count() as u64, case.json["image_tokens"].as_u64().unwrap(), "{}", case.name);
    }
}

#[test]
fn normalised_pixels_are_the_reference_encoder_inputs() {
    // The reference feeds bf16((u8/255 - 0.5)/0.5); every value must be bf16-exact and in [-1, 1].
    let Some(fixtures) = parity("normalised_pixels_are_the_reference_encoder_inputs") else { return };
    let case = &fixtures.cases()[0];
    let image = load_image(case.input_image(), &LoadOptions::default()).unwrap();
    let prepared = prepare_image(&image, &mode_of(Architecture::DeepseekOcr, case)).unwrap();
    let px = prepared.global.normalized();
    assert_eq!(px.len(), prepared.global.data.len());
    for v in px {
        assert!((-1.0..=1.0).contains(&v));
        assert_eq!(v.to_bits() & 0xFFFF, 0, "{v} is not a bf16 value");
    }
}
