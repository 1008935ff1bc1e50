//! Attachment payloads: base64 decoding, digests and magic-byte sniffing.
//!
//! `ContentTransferEncoded` is base64 in the standard alphabet with padding. Whitespace
//! (space, TAB, CR, LF) anywhere is skipped, since producers wrap lines at 76 or 64 columns
//! or not at all; every other character outside the alphabet is an error, as is data after
//! the padding. Decoding streams in fixed-size chunks so that checking a multi-megabyte
//! attachment costs no second copy of it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::model::{PayloadFormat, Sha256};

/// Characters of base64 text decoded per step (a multiple of 4).
const CHUNK: usize = 64 * 1024;

/// What a payload decodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadSummary {
    /// Decoded size in bytes.
    pub size: u64,
    /// SHA-256 of the decoded bytes.
    pub sha256: Sha256,
    /// Format recognised from the first bytes.
    pub format: PayloadFormat,
}

/// The base64 text is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at character {position}")]
pub struct Base64Error {
    /// Offset in the text (whitespace included) of the offending character.
    pub position: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// A decoder: feeds decoded bytes to the sink, in order.
type Decoder = fn(&str, &mut dyn FnMut(&[u8])) -> Result<(), Base64Error>;

/// Decodes `text` and summarizes the payload without keeping it.
pub fn summarize(text: &str) -> Result<PayloadSummary, Base64Error> {
    summarize_with(text, decode_fast).or_else(|_| summarize_with(text, decode_checked))
}

fn summarize_with(text: &str, decoder: Decoder) -> Result<PayloadSummary, Base64Error> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut head = Vec::with_capacity(8);
    let mut size = 0u64;
    decoder(text, &mut |bytes| {
        if head.len() < 8 {
            let take = (8 - head.len()).min(bytes.len());
            head.extend_from_slice(&bytes[..take]);
        }
        size += bytes.len() as u64;
        ctx.update(bytes);
    })?;
    let mut sha = [0u8; 32];
    sha.copy_from_slice(ctx.finish().as_ref());
    Ok(PayloadSummary {
        size,
        sha256: Sha256(sha),
        format: PayloadFormat::sniff(&head),
    })
}

/// Decodes `text` into bytes.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    decode_with(text, decode_fast).or_else(|_| decode_with(text, decode_checked))
}

fn decode_with(text: &str, decoder: Decoder) -> Result<Vec<u8>, Base64Error> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    decoder(text, &mut |bytes| out.extend_from_slice(bytes))?;
    Ok(out)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The fast path: whitespace-separated runs are copied into a chunk and handed to the base64
/// engine, which checks the alphabet and padding. Any failure, including padding that ends
/// a chunk before the end of the text, is reported without detail; the caller then reruns
/// [`decode_checked`] from scratch to locate and name the error.
fn decode_fast(text: &str, sink: &mut dyn FnMut(&[u8])) -> Result<(), Base64Error> {
    let fail = || Base64Error {
        position: 0,
        reason: "malformed base64",
    };
    let bytes = text.as_bytes();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 256);
    let mut out = vec![0u8; (CHUNK + 256) / 4 * 3 + 3];
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && !is_space(bytes[i]) {
            i += 1;
        }
        buf.extend_from_slice(&bytes[start..i]);
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if buf.len() >= CHUNK && i < bytes.len() {
            let n = buf.len() / 4 * 4;
            if buf[n - 1] == b'=' {
                return Err(fail());
            }
            let m = STANDARD
                .decode_slice(&buf[..n], &mut out)
                .map_err(|_| fail())?;
            sink(&out[..m]);
            buf.drain(..n);
        }
    }
    if out.len() < buf.len() / 4 * 3 + 3 {
        out.resize(buf.len() / 4 * 3 + 3, 0);
    }
    let m = STANDARD.decode_slice(&buf, &mut out).map_err(|_| fail())?;
    sink(&out[..m]);
    Ok(())
}

/// Encodes bytes as base64 wrapped at 76 columns (MIME style), one trailing newline per line.
pub fn encode_wrapped(data: &[u8]) -> String {
    let flat = STANDARD.encode(data);
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 + 1);
    for (i, line) in flat.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // base64 output is ASCII, so every 76-byte chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
    }
    out
}

/// The checking path: character by character, naming the first error and its position.
fn decode_checked(text: &str, sink: &mut dyn FnMut(&[u8])) -> Result<(), Base64Error> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut positions: Vec<usize> = Vec::new();
    let mut out = vec![0u8; CHUNK / 4 * 3];
    let mut padding_at: Option<usize> = None;
    let mut quads = 0usize;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            b'=' => {
                padding_at.get_or_insert(i);
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {
                if padding_at.is_some() {
                    return Err(Base64Error {
                        position: i,
                        reason: "data after padding",
                    });
                }
            }
            _ => {
                return Err(Base64Error {
                    position: i,
                    reason: "character outside the base64 alphabet",
                });
            }
        }
        buf.push(b);
        positions.push(i);
        quads += 1;
        if buf.len() == CHUNK {
            flush(&mut buf, &mut positions, &mut out, sink)?;
        }
    }
    if quads % 4 != 0 {
        return Err(Base64Error {
            position: text.len(),
            reason: "length is not a multiple of 4 (truncated or missing padding)",
        });
    }
    flush(&mut buf, &mut positions, &mut out, sink)
}

fn flush(
    buf: &mut Vec<u8>,
    positions: &mut Vec<usize>,
    out: &mut [u8],
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), Base64Error> {
    if buf.is_empty() {
        return Ok(());
    }
    let n = STANDARD.decode_slice(&buf[..], out).map_err(|e| {
        let at = match e {
            base64::DecodeSliceError::DecodeError(
                base64::DecodeError::InvalidByte(i, _)
                | base64::DecodeError::InvalidLastSymbol(i, _),
            ) => positions.get(i).copied().unwrap_or(0),
            _ => positions.last().copied().unwrap_or(0),
        };
        Base64Error {
            position: at,
            reason: "malformed base64 (bad padding or trailing bits)",
        }
    })?;
    sink(&out[..n]);
    buf.clear();
    positions.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wrapped_text_and_digests_it() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let text = encode_wrapped(&data).replace('\n', "\r\n  ");
        let s = summarize(&text).unwrap();
        assert_eq!(s.size, data.len() as u64);
        assert_eq!(s.sha256, Sha256::of(&data));
        assert_eq!(decode(&text).unwrap(), data);
    }

    #[test]
    fn sniffs_formats() {
        let zip = STANDARD.encode(b"PK\x03\x04rest");
        assert_eq!(summarize(&zip).unwrap().format, PayloadFormat::Zip);
        let pdf = STANDARD.encode(b"%PDF-1.7\n");
        assert_eq!(summarize(&pdf).unwrap().format, PayloadFormat::Pdf);
        assert_eq!(summarize("").unwrap().format, PayloadFormat::Other);
    }

    #[test]
    fn refuses_bad_alphabet_and_padding() {
        assert_eq!(summarize("QUJD*EFG").unwrap_err().position, 4);
        assert_eq!(
            summarize("QQ==QUJD").unwrap_err().reason,
            "data after padding"
        );
        assert!(summarize("QUJDR").is_err());
        assert!(summarize("QUI=").is_ok());
        assert!(summarize("QUJ=").is_err(), "non-canonical trailing bits");
        assert!(summarize("QUJD\u{00e9}").is_err());
    }

    #[test]
    fn fast_and_checked_paths_agree() {
        let data: Vec<u8> = (0..150_000u32).map(|i| (i * 13 % 256) as u8).collect();
        let wrapped = encode_wrapped(&data);
        // Padding that ends a chunk in the middle of the text must not pass.
        let early_pad = format!("{}QQ==\n{}", "QUJD".repeat(CHUNK / 4 - 1), wrapped);
        for text in [wrapped.clone(), wrapped.replace('\n', " \t\r\n"), early_pad] {
            let mut fast = Vec::new();
            let f = decode_fast(&text, &mut |b| fast.extend_from_slice(b)).map(|_| fast);
            let mut checked = Vec::new();
            let c = decode_checked(&text, &mut |b| checked.extend_from_slice(b)).map(|_| checked);
            assert_eq!(f.is_ok(), c.is_ok());
            if let (Ok(f), Ok(c)) = (f, c) {
                assert_eq!(f, c);
            }
        }
    }
}
