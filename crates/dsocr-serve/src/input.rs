//! What clients send, turned into page images: `data:` URIs and uploads of PNG, JPEG, WebP, TIFF,
//! BMP or PDF (every page rendered), checked against the server's limits.

use base64::Engine as _;
use dsocr::pdf::{PdfDocument, PdfError};
use dsocr::preprocess::{LoadOptions, RgbImage, load_image_from_memory};

use crate::ApiError;

/// Input limits (see [`crate::ServeOptions`]).
#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    /// Most pixels per image (and per rendered PDF page).
    pub max_pixels: u64,
    /// Most pages per request.
    pub max_pages: usize,
    /// PDF rendering resolution.
    pub pdf_dpi: f32,
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

/// The page images of an uploaded file: an image's one page, or every page of a PDF rendered.
/// CPU work: run it on a blocking thread. `name` and `param` name the input in errors.
pub fn decode_pages(bytes: Vec<u8>, name: &str, param: &str, limits: &InputLimits) -> Result<Vec<RgbImage>, ApiError> {
    if is_pdf(&bytes) {
        return render_pdf(bytes, name, param, limits);
    }
    let options = LoadOptions { max_pixels: limits.max_pixels, ..LoadOptions::default() };
    let image = load_image_from_memory(&bytes, name, &options).map_err(|e| {
        ApiError::invalid(Some(param), format!("{e} (send a PNG, JPEG, WebP, TIFF or BMP image, or a PDF)")).code("invalid_image")
    })?;
    Ok(vec![image])
}

fn render_pdf(bytes: Vec<u8>, name: &str, param: &str, limits: &InputLimits) -> Result<Vec<RgbImage>, ApiError> {
    let doc = PdfDocument::from_bytes(bytes, name, None).map_err(|e| {
        let message = match &e {
            PdfError::PasswordRequired { .. } => {
                format!("{name} is encrypted with a user password, which this server cannot take: send it decrypted (e.g. `qpdf --decrypt --password=… in.pdf out.pdf`)")
            }
            _ => format!("{e}"),
        };
        ApiError::invalid(Some(param), message).code("invalid_pdf")
    })?;
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
    for k in 0..count {
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
    }
    let pages: Vec<usize> = (0..count).collect();
    doc.render_pages(&pages, limits.pdf_dpi)
        .into_iter()
        .enumerate()
        .map(|(k, r)| {
            r.map(RgbImage::from).map_err(|e| ApiError::invalid(Some(param), format!("{name} page {}: {e}", k + 1)).code("invalid_pdf"))
        })
        .collect()
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
        let limits = InputLimits { max_pixels: 1 << 20, max_pages: 4, pdf_dpi: 72.0 };
        let e = decode_pages(b"not an image".to_vec(), "upload", "file", &limits).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("PNG"), "{}", e.message);
        let e = decode_pages(b"%PDF-1.7 garbage".to_vec(), "upload.pdf", "file", &limits).unwrap_err();
        assert_eq!(e.code, Some("invalid_pdf"));
    }
}
