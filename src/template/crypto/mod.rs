//! ESO's crypto template functions: PKCS#12 to PEM (`pkcs12key`, `pkcs12cert` and their `Pass`
//! forms), PEM to PKCS#12 (`pemToPkcs12`, `fullPemToPkcs12` and their `Pass` forms) and JWK to PEM
//! (`jwkPublicKeyPem`, `jwkPrivateKeyPem`), as ESO's `runtime/template/v2/pkcs12.go` and `jwk.go`.
//!
//! Inputs and outputs are byte-char strings ([`crate::template::bytes`]): a PKCS#12 file comes in as
//! its raw bytes (`{{ .tls | b64dec | pkcs12key }}`), PEM goes out as Go's `pem.Encode` writes it
//! (64-column base64, LF, every block ending in a newline) and a PKCS#12 file goes out as standard
//! base64. Every function is deterministic: the same input renders the same bytes.
//!
//! Errors never quote the input, a password or key material.
//!
//! This module registers the functions and writes their results; the work is done by:
//! - `pkcs12_read`: PKCS#12 files to keys and certificates (`pkcs12key`, `pkcs12cert`);
//! - `pkcs12_write`: PEM certificates and key to a PKCS#12 file (`pemToPkcs12`, `fullPemToPkcs12`);
//! - `chain`: certificate chain ordering, leaf to root (for `pkcs12cert`);
//! - `jwk`: JWK to PEM (`jwkPublicKeyPem`, `jwkPrivateKeyPem`);
//! - `pkcs8`: private keys in PKCS#8 form (checking, and wrapping PKCS#1 and SEC 1 keys);
//! - `pbe`: hashes, HMAC, the PKCS#12 and PBKDF2 key derivations and the CBC ciphers;
//! - `asn1`: object identifiers and the ASN.1 structures of PKCS#12 files.

mod asn1;
mod chain;
mod jwk;
mod pbe;
mod pkcs12_read;
mod pkcs12_write;
mod pkcs8;

use base64::Engine as _;

use super::args::{arity, bytes_of, err, f, s, FResult};
use super::bytes::text_to_engine;
use jwk::{jwk_private_key_pem, jwk_public_key_pem};
use pkcs12_read::{pkcs12_certs_pem, pkcs12_keys_pem};
use pkcs12_write::pem_to_pkcs12;

/// The functions this module adds to the library.
pub fn functions() -> Vec<(String, gotmpl::ValueFunc)> {
    vec![
        f("pkcs12key", |n, a| {
            arity(n, a, 1)?;
            pem_out(n, pkcs12_keys_pem(&bytes_of(n, &a[0])?, b""))
        }),
        f("pkcs12keyPass", |n, a| {
            arity(n, a, 2)?;
            pem_out(n, pkcs12_keys_pem(&bytes_of(n, &a[1])?, &bytes_of(n, &a[0])?))
        }),
        f("pkcs12cert", |n, a| {
            arity(n, a, 1)?;
            pem_out(n, pkcs12_certs_pem(&bytes_of(n, &a[0])?, b""))
        }),
        f("pkcs12certPass", |n, a| {
            arity(n, a, 2)?;
            pem_out(n, pkcs12_certs_pem(&bytes_of(n, &a[1])?, &bytes_of(n, &a[0])?))
        }),
        f("pemToPkcs12", |n, a| {
            arity(n, a, 2)?;
            b64_out(n, pem_to_pkcs12(&bytes_of(n, &a[0])?, &bytes_of(n, &a[1])?, b"", false))
        }),
        f("pemToPkcs12Pass", |n, a| {
            arity(n, a, 3)?;
            b64_out(n, pem_to_pkcs12(&bytes_of(n, &a[0])?, &bytes_of(n, &a[1])?, &bytes_of(n, &a[2])?, false))
        }),
        f("fullPemToPkcs12", |n, a| {
            arity(n, a, 2)?;
            b64_out(n, pem_to_pkcs12(&bytes_of(n, &a[0])?, &bytes_of(n, &a[1])?, b"", true))
        }),
        f("fullPemToPkcs12Pass", |n, a| {
            arity(n, a, 3)?;
            b64_out(n, pem_to_pkcs12(&bytes_of(n, &a[0])?, &bytes_of(n, &a[1])?, &bytes_of(n, &a[2])?, true))
        }),
        f("jwkPublicKeyPem", |n, a| {
            arity(n, a, 1)?;
            pem_out(n, jwk_public_key_pem(&bytes_of(n, &a[0])?))
        }),
        f("jwkPrivateKeyPem", |n, a| {
            arity(n, a, 1)?;
            pem_out(n, jwk_private_key_pem(&bytes_of(n, &a[0])?))
        }),
    ]
}

fn pem_out(name: &str, result: Result<String, String>) -> FResult {
    result.map(|text| s(&text_to_engine(&text))).map_err(|e| err(name, e))
}

fn b64_out(name: &str, result: Result<Vec<u8>, String>) -> FResult {
    result.map(|der| s(&base64::engine::general_purpose::STANDARD.encode(der))).map_err(|e| err(name, e))
}

/// PEM blocks as Go's `pem.Encode` writes them, one after the other (`pem::encode_many` would put
/// a blank line between blocks).
fn pem_encode(tag: &str, ders: &[Vec<u8>]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    ders.iter().map(|d| pem::encode_config(&pem::Pem::new(tag, d.clone()), config)).collect()
}
