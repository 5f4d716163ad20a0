//! New secrets: the bearer tokens anima-server hands out (sessions, MCP
//! tokens) and the passwords and service tokens it or a client generates.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random token: 256 bits from the OS's generator, URL-safe base64
/// (43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The form in which tokens are stored and compared: SHA-256, hex. A fast
/// hash is right here because tokens carry full entropy, unlike passwords.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
