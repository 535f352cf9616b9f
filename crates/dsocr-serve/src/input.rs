//! What clients send, turned into page images: `data:` URIs and uploads of PNG, JPEG, WebP, TIFF,
//! BMP or PDF (every page rendered), checked against the server's limits. A request's files are
//! first probed (page counts and sizes from headers and page boxes), so that the limits and the
//! queue are checked before anything is decoded, then decoded.

use axum::http::StatusCode;
use base64::Engine as _;
use dsocr::pdf::{CjkFont, PdfDocument, PdfError};
use dsocr::preprocess::{LoadOptions, PreprocessError, RgbImage, load_image_from_memory};

use crate::ApiError;

/// How uploads are read, and their limits (see [`crate::ServeOptions`]).
#[derive(Debug, Clone)]
pub struct InputOptions {
    /// Most pixels per image (and per rendered PDF page).
    pub max_pixels: u64,
    /// Most pages per request.
    pub max_pages: usize,
    /// PDF rendering resolution.
    pub pdf_dpi: f32,
    /// The font for CJK text a PDF does not embed (`None`: an installed Noto CJK, if any).
    pub cjk_font: Option<CjkFont>,
}

/// The bytes of a `data:[<mime>][;base64],<data>` URI and its MIME type. `param` names the
/// request field in errors.
pub fn parse_data_uri(uri: &str, param: &str) -> Result<(String, Vec<u8>), ApiError> {
    let Some(rest) = uri.strip_prefix("data:") else {
        let what = if is_remote(uri) {
            "remote URLs are not fetched by this server (start it with --allow-remote-urls to allow them)"
        } else {
            "not a data: URI"
        };
        return Err(ApiError::invalid(
            Some(param),
            format!("{what}: send the file inline as `data:image/png;base64,…` (or application/pdf)"),
        )
        .code("invalid_image_url"));
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(ApiError::invalid(Some(param), "malformed data: URI (no comma before the data)"));
    };
    let base64 = meta.ends_with(";base64");
    let mime = meta.trim_end_matches(";base64").split(';').next().unwrap_or("").to_ascii_lowercase();
    if !base64 {
        return Err(ApiError::invalid(Some(param), "the data: URI must be base64-encoded (`;base64,`)"));
    }
    let bytes = decode_base64(data).map_err(|e| ApiError::invalid(Some(param), format!("the data: URI's base64 is invalid: {e}")))?;
    Ok((mime, bytes))
}

/// Whether `url` is an `http://` or `https://` URL.
pub fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Download `url` (at most `max_bytes`, 60 s), for servers started with `--allow-remote-urls`.
/// Blocking: run it on a blocking thread.
pub fn fetch_remote(url: &str, max_bytes: usize, param: &str) -> Result<Vec<u8>, ApiError> {
    use std::io::Read as _;
    let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(60)).build();
    let response =
        agent.get(url).call().map_err(|e| ApiError::invalid(Some(param), format!("cannot fetch {url}: {e}")).code("invalid_image_url"))?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ApiError::invalid(Some(param), format!("cannot read {url}: {e}")).code("invalid_image_url"))?;
    if bytes.len() > max_bytes {
        return Err(
            ApiError::invalid(Some(param), format!("{url} is larger than the server's {max_bytes}-byte limit")).code("image_too_large")
        );
    }
    Ok(bytes)
}

/// Standard base64 with or without padding, whitespace ignored.
pub fn decode_base64(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.trim_end_matches('=').as_bytes()))
}

/// Whether bytes are a PDF (by their signature, whatever the client said).
pub fn is_pdf(bytes: &[u8]) -> bool {
    bytes.len() >= 5 && bytes[..1024.min(bytes.len())].windows(5).any(|w| w == b"%PDF-")
}

/// Most pixels of a request's pages together, as a multiple of [`InputOptions::max_pixels`].
pub const REQUEST_PIXELS_PER_PAGE_LIMIT: u64 = 10;

impl InputOptions {
    /// Most pixels of all a request's pages together: [`REQUEST_PIXELS_PER_PAGE_LIMIT`] times
    /// `max_pixels` (500 million by default: 250 A4 pages at 144 DPI, 1.5 GB as RGB).
    pub fn max_request_pixels(&self) -> u64 {
        self.max_pixels.saturating_mul(REQUEST_PIXELS_PER_PAGE_LIMIT)
    }
}

/// An uploaded file whose pages are counted and measured (headers and PDF page boxes only), not
/// yet decoded or rendered.
pub struct Probed {
    name: String,
    param: String,
    data: Data,
    /// Each page's size in pixels (a PDF's at the server's DPI).
    pub sizes: Vec<(u32, u32)>,
}

impl Probed {
    /// The file's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The request field it came in.
    pub fn param(&self) -> &str {
        &self.param
    }
}

enum Data {
    Image(Vec<u8>),
    Pdf(PdfDocument),
}

/// Count and measure a file's pages against the per-file limits (`max_pages`, `max_pixels` per
/// page), decoding nothing. CPU work (a PDF is parsed): run it on a blocking thread. `name` and
/// `param` name the input in errors.
pub fn probe(bytes: Vec<u8>, name: &str, param: &str, limits: &InputOptions) -> Result<Probed, ApiError> {
    let (data, sizes) = if is_pdf(&bytes) {
        let doc = open_pdf(bytes, name, param, limits)?;
        let sizes = pdf_sizes(&doc, name, param, limits)?;
        (Data::Pdf(doc), sizes)
    } else {
        let size = image_size(&bytes, name, limits).map_err(|e| invalid_image(e, param))?;
        (Data::Image(bytes), vec![size])
    };
    Ok(Probed { name: name.to_string(), param: param.to_string(), data, sizes })
}

/// The pages of a request's files together, within `max_pages` (400) and
/// [`InputOptions::max_request_pixels`] (413). Returns the page count.
pub fn check_request(files: &[Probed], limits: &InputOptions) -> Result<usize, ApiError> {
    let pages: usize = files.iter().map(|f| f.sizes.len()).sum();
    if pages > limits.max_pages {
        let param = files.last().map(|f| f.param.as_str());
        return Err(ApiError::invalid(
            param,
            format!("the request has {pages} pages; this server takes at most {} per request (--max-pages): split it", limits.max_pages),
        )
        .code("too_many_pages"));
    }
    let pixels: u64 = files.iter().flat_map(|f| &f.sizes).map(|&(w, h)| u64::from(w) * u64::from(h)).sum();
    let limit = limits.max_request_pixels();
    if pixels > limit {
        return Err(ApiError::invalid(
            None,
            format!(
                "the request's {pages} pages come to {pixels} pixels and this server takes at most {limit} per request \
                 ({REQUEST_PIXELS_PER_PAGE_LIMIT} × --max-pixels): send fewer pages per request (split the PDF) or smaller \
                 images, or raise `dsocr serve --max-pixels`"
            ),
        )
        .status(StatusCode::PAYLOAD_TOO_LARGE)
        .code("request_too_large"));
    }
    Ok(pages)
}

/// One page of a request: its image, or why it could not be rendered (the page then fails on
/// its own and the others are answered: docs/serve.md).
pub type PageImage = Result<RgbImage, String>;

/// The page images of a probed file: an image's one page, or every page of a PDF rendered.
/// An image that cannot be decoded fails the file; a PDF page that cannot be rendered fails only
/// that page. CPU work: run it on a blocking thread.
pub fn decode(file: Probed, limits: &InputOptions) -> Result<Vec<PageImage>, ApiError> {
    let Probed { name, data, param, .. } = file;
    match data {
        Data::Pdf(doc) => Ok(render_pdf(&doc, &name, limits)),
        Data::Image(bytes) => {
            let options = LoadOptions { max_pixels: limits.max_pixels, ..LoadOptions::default() };
            let image = load_image_from_memory(&bytes, &name, &options).map_err(|e| invalid_image(e, &param))?;
            Ok(vec![Ok(image)])
        }
    }
}

/// Run `work` (decoding `name`, the request field `param`) on a blocking thread. A decoder that
/// panics on a malformed file fails that file with a 400 that names it, as any other bad input.
pub async fn blocking<T, F>(name: &str, param: &str, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let what = dsocr::engine::panic_message(&*panic);
            Err(ApiError::invalid(
                Some(param),
                format!("{name} could not be read: its decoder failed ({what}); the file may be damaged: check that other programs open it, or convert it to PNG or PDF"),
            )
            .code("invalid_image"))
        }
        Err(e) => Err(ApiError::internal(format!("reading {name} was stopped: {e}"))),
    }
}

fn invalid_image(e: PreprocessError, param: &str) -> ApiError {
    let code = if matches!(e, PreprocessError::TooLarge { .. }) { "image_too_large" } else { "invalid_image" };
    ApiError::invalid(Some(param), format!("{e} (send a PNG, JPEG, WebP, TIFF or BMP image, or a PDF)")).code(code)
}

/// An image's size from its header, within `max_pixels`.
fn image_size(bytes: &[u8], name: &str, limits: &InputOptions) -> Result<(u32, u32), PreprocessError> {
    let source_name = name.to_string();
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::BadImage { source_name: source_name.clone(), reason: e.to_string() })?;
    if reader.format().is_none() {
        return Err(PreprocessError::UnsupportedFormat { source_name });
    }
    let (width, height) =
        reader.into_dimensions().map_err(|e| PreprocessError::BadImage { source_name: source_name.clone(), reason: e.to_string() })?;
    if width == 0 || height == 0 {
        return Err(PreprocessError::BadImage { source_name, reason: format!("the image is empty ({width}×{height} pixels)") });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PreprocessError::TooLarge { source_name, width, height, max_pixels: limits.max_pixels });
    }
    Ok((width, height))
}

fn open_pdf(bytes: Vec<u8>, name: &str, param: &str, limits: &InputOptions) -> Result<PdfDocument, ApiError> {
    let mut doc = PdfDocument::from_bytes(bytes, name, None).map_err(|e| {
        let message = match &e {
            PdfError::PasswordRequired { .. } => {
                format!("{name} is encrypted with a user password, which this server cannot take: send it decrypted (e.g. `qpdf --decrypt --password=… in.pdf out.pdf`)")
            }
            _ => format!("{e}"),
        };
        ApiError::invalid(Some(param), message).code("invalid_pdf")
    })?;
    if let Some(font) = &limits.cjk_font {
        doc = doc.with_cjk_font(font.clone());
    }
    let count = doc.page_count();
    if count == 0 {
        return Err(ApiError::invalid(Some(param), format!("{name} has no pages")).code("invalid_pdf"));
    }
    if count > limits.max_pages {
        return Err(ApiError::invalid(
            Some(param),
            format!("{name} has {count} pages; this server takes at most {} per request (--max-pages): split it", limits.max_pages),
        )
        .code("too_many_pages"));
    }
    Ok(doc)
}

fn pdf_sizes(doc: &PdfDocument, name: &str, param: &str, limits: &InputOptions) -> Result<Vec<(u32, u32)>, ApiError> {
    (0..doc.page_count())
        .map(|k| {
            let (w, h) = doc.page_pixels(k, limits.pdf_dpi).map_err(|e| ApiError::invalid(Some(param), e.to_string()))?;
            if u64::from(w) * u64::from(h) > limits.max_pixels {
                return Err(ApiError::invalid(
                    Some(param),
                    format!(
                        "{name} page {} is {w}×{h} pixels at {} DPI, over the server's {} pixel limit",
                        k + 1,
                        limits.pdf_dpi,
                        limits.max_pixels
                    ),
                )
                .code("image_too_large"));
            }
            Ok((w, h))
        })
        .collect()
}

fn render_pdf(doc: &PdfDocument, name: &str, limits: &InputOptions) -> Vec<PageImage> {
    let pages: Vec<usize> = (0..doc.page_count()).collect();
    doc.render_pages(&pages, limits.pdf_dpi).into_iter().map(|r| r.map(RgbImage::from).map_err(|e| format!("{name}: {e}"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_uris_decode_and_bad_ones_say_why() {
        let (mime, bytes) = parse_data_uri("data:image/png;base64,aGVsbG8=", "x").unwrap();
        assert_eq!((mime.as_str(), bytes.as_slice()), ("image/png", b"hello".as_slice()));
        let (_, bytes) = parse_data_uri("data:application/pdf;base64,aGVsbG8", "x").unwrap();
        assert_eq!(bytes, b"hello", "unpadded base64 is accepted");
        let remote = parse_data_uri("https://example.com/a.png", "messages[0].content[1].image_url").unwrap_err();
        assert!(remote.message.contains("remote URLs"), "{}", remote.message);
        assert_eq!(remote.param.as_deref(), Some("messages[0].content[1].image_url"));
        assert!(parse_data_uri("data:image/png;base64,***", "x").unwrap_err().message.contains("base64"));
        assert!(parse_data_uri("data:image/png,raw", "x").is_err());
    }

    #[test]
    fn bytes_that_are_not_an_image_are_refused_with_a_reason() {
        let limits = InputOptions { max_pixels: 1 << 20, max_pages: 4, pdf_dpi: 72.0, cjk_font: None };
        let e = probe(b"not an image".to_vec(), "upload", "file", &limits).err().unwrap();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("PNG"), "{}", e.message);
        let e = probe(b"%PDF-1.7 garbage".to_vec(), "upload.pdf", "file", &limits).err().unwrap();
        assert_eq!(e.code, Some("invalid_pdf"));
    }

    #[tokio::test]
    async fn a_decoder_that_panics_fails_its_file_with_a_400_naming_it() {
        let e =
            blocking::<(), _>("scan.tiff", "messages[0].content[1].image_url", || panic!("tile offset out of range")).await.unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(e.param.as_deref(), Some("messages[0].content[1].image_url"));
        assert!(e.message.contains("scan.tiff") && e.message.contains("tile offset out of range"), "{}", e.message);
        assert_eq!(blocking("ok.png", "file", || Ok(7)).await.unwrap(), 7);
    }
}
