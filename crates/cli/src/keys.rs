//! RSA key pairs for call centers: generation, PEM files, loading.
//!
//! Private keys are written PKCS#8 (`BEGIN PRIVATE KEY`) with mode 0600 and public keys as
//! SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`), the forms OpenSSL produces by default, so
//! keys made here and keys made with `openssl genpkey` are interchangeable.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::rngs::OsRng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;

/// A key pair in PEM form. The private half is zeroed on drop.
pub struct KeyPair {
    pub private_pem: rsa::pkcs8::der::zeroize::Zeroizing<String>,
    pub public_pem: String,
}

/// Key sizes the Telephony Integration API accepts (the guide: 1024, 2048 or 4096; 2048
/// recommended). 1024 is refused here: it is too weak to mint new keys with.
pub const ALLOWED_BITS: [usize; 2] = [2048, 4096];

/// Generates a fresh RSA key pair from the operating system's randomness.
pub fn generate(bits: usize) -> Result<KeyPair> {
    if !ALLOWED_BITS.contains(&bits) {
        bail!("--bits {bits} is not supported; use 2048 (recommended) or 4096");
    }
    let private = RsaPrivateKey::new(&mut OsRng, bits).context("generating an RSA key failed")?;
    to_pair(&private)
}

fn to_pair(private: &RsaPrivateKey) -> Result<KeyPair> {
    let private_pem = private.to_pkcs8_pem(LineEnding::LF).context("encoding the private key failed")?;
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the public key failed")?;
    Ok(KeyPair { private_pem, public_pem })
}

/// Loads a private key (PKCS#8 or PKCS#1 PEM) and derives its public half.
pub fn load(private_key_file: &Path) -> Result<KeyPair> {
    let pem = rsa::pkcs8::der::zeroize::Zeroizing::new(
        fs::read_to_string(private_key_file)
            .with_context(|| format!("cannot read private key {}", private_key_file.display()))?,
    );
    let private = RsaPrivateKey::from_pkcs8_pem(&pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
        .with_context(|| {
            format!("{} is not an RSA private key in PEM form (PKCS#8 or PKCS#1)", private_key_file.display())
        })?;
    to_pair(&private)
}

/// Writes a file readable by its owner only. Refuses to replace an existing file unless
/// `overwrite`.
pub fn write_private(path: &Path, contents: &str, overwrite: bool) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} already exists; remove it first or choose another directory", path.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
        }
    })?;
    // `mode` applies only to new files; an overwritten one keeps its old permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Writes a non-secret file (public key, certificate).
pub fn write_public(path: &Path, contents: &str, overwrite: bool) -> Result<()> {
    if !overwrite && path.exists() {
        bail!("{} already exists; remove it first or choose another directory", path.display());
    }
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `<dir>/private.pem` and `<dir>/public.pem`.
pub fn generate_into(dir: &Path, bits: usize, overwrite: bool) -> Result<KeyPair> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let private_path = dir.join("private.pem");
    let public_path = dir.join("public.pem");
    if !overwrite {
        for p in [&private_path, &public_path] {
            if p.exists() {
                bail!("{} already exists; pass --force to replace the key pair", p.display());
            }
        }
    }
    let pair = generate(bits)?;
    write_private(&private_path, &pair.private_pem, overwrite)?;
    write_public(&public_path, &pair.public_pem, overwrite)?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_write_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pair = generate_into(dir.path(), 2048, false).unwrap();
        assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let loaded = load(&dir.path().join("private.pem")).unwrap();
        assert_eq!(loaded.public_pem, pair.public_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("private.pem")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = generate_into(dir.path(), 2048, false);
        assert!(again.is_err_and(|e| e.to_string().contains("--force")));
    }

    #[test]
    fn refuses_weak_keys() {
        assert!(generate(1024).is_err());
    }
}
