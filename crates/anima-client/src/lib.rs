//! What every client of anima-server shares (the CLI, the desktop, the
//! benchmarks): how to reach a server and whom to trust when it speaks
//! TLS ([`endpoint`]), a signed-in [`Session`] with a client per service,
//! [`Session::call`] for one request and [`Session::list`] for every row
//! of a paged one, the CLI's stored [`Credentials`], the files that hold
//! tokens ([`write_private_file`], [`keep_sqlite_private`]), and the `ssh`
//! call for a sandbox login ([`ssh`]).

mod credentials;
mod session;
pub mod ssh;

use std::path::Path;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// The endpoint for a server URL. `https://` servers are checked against
/// the system's trusted roots, or against `ca_cert` alone (a PEM file)
/// when one is given, as for a private CA. `http://` is plaintext, so only
/// a loopback host is accepted: anywhere else the password and session
/// token would cross the network readable, and anyone on the path could
/// answer in the server's name.
pub fn endpoint(url: &str, ca_cert: Option<&Path>) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::from_shared(url.to_owned()).with_context(|| {
        format!("{url:?} is not a server URL (http://host:port or https://host:port)")
    })?;
    let loopback = endpoint.uri().host().is_some_and(is_loopback);
    match (endpoint.uri().scheme_str(), ca_cert) {
        (Some("http"), None) if loopback => Ok(endpoint),
        (Some("http"), None) => anyhow::bail!(
            "refusing plaintext to {url}: the password and session token would cross the \
             network in clear; use the server's https:// URL"
        ),
        (Some("http"), Some(_)) => anyhow::bail!(
            "a CA certificate was given for {url}, which is plaintext; use its https:// URL"
        ),
        (Some("https"), ca_cert) => {
            let tls = match ca_cert {
                Some(path) => ClientTlsConfig::new().ca_certificate(read_ca(path)?),
                None => ClientTlsConfig::new().with_native_roots(),
            };
            endpoint
                .tls_config(tls)
                .with_context(|| format!("setting up TLS for {url}"))
        }
        _ => anyhow::bail!("{url:?} is not a server URL (http://host:port or https://host:port)"),
    }
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub use credentials::{Credentials, config_dir};
pub use session::{
    ListReply, PAGE_SIZE, PagedRequest, Services, Session, UnaryRequest, connect, connect_lazy,
};

/// A server's answer as people read it: its message, with its reason code.
pub fn describe(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    match status.get_details_error_info() {
        Some(info) => format!("{} ({})", status.message(), info.reason),
        None => status.message().to_owned(),
    }
}

/// Writes a file only its owner can read, for files that hold a bearer
/// token, never through a link planted in its place; an existing file's
/// mode is narrowed.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // The mode above applies only to a file this call creates.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

/// Makes a SQLite database (and its journal files, which SQLite gives the
/// database's mode when it makes them) readable by its owner only,
/// creating the database file so: it holds tokens or their hashes. A file
/// made earlier with a wider mode is narrowed.
pub fn keep_sqlite_private(database: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    for suffix in ["", "-wal", "-shm"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        let path = std::path::PathBuf::from(name);
        // Through the opened file, never following a link planted in its
        // place: the mode changes on what was opened, nothing else.
        let opened = std::fs::OpenOptions::new()
            .create(suffix.is_empty())
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        match opened {
            Ok(file) => file
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} private", path.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(err) => {
                return Err(err).with_context(|| format!("opening {}", path.display()));
            }
        }
    }
    Ok(())
}

/// Reads a PEM file that must hold at least one certificate: a wrong file
/// is named now rather than failing every handshake later.
fn read_ca(path: &Path) -> anyhow::Result<Certificate> {
    let pem = std::fs::read(path)
        .with_context(|| format!("reading the CA certificate {}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM file", path.display()))?;
    anyhow::ensure!(
        !certificates.is_empty(),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(Certificate::from_pem(pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_ca_files_are_checked_before_connecting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = rcgen::CertificateParams::new(vec!["anima.test".into()])
            .expect("params")
            .self_signed(&key)
            .expect("self-signed");
        std::fs::write(&ca, certificate.pem()).expect("write");
        let not_pem = dir.path().join("key.txt");
        std::fs::write(&not_pem, "not a certificate").expect("write");

        assert!(endpoint("http://127.0.0.1:7433", None).is_ok());
        assert!(endpoint("https://anima.test:7433", None).is_ok());
        assert!(endpoint("https://anima.test:7433", Some(&ca)).is_ok());
        let error = |url, ca| format!("{:#}", endpoint(url, ca).expect_err("refused"));
        assert!(error("127.0.0.1:7433", None).contains("not a server URL"));
        assert!(error("ftp://anima.test", None).contains("not a server URL"));
        assert!(endpoint("http://localhost:7433", None).is_ok());
        assert!(endpoint("http://[::1]:7433", None).is_ok());
        for remote in [
            "http://anima.test:7433",
            "http://10.0.0.5:7433",
            "http://0.0.0.0:7433",
        ] {
            assert!(
                error(remote, None).contains("refusing plaintext"),
                "{remote}"
            );
        }
        assert!(error("http://127.0.0.1:7433", Some(&ca)).contains("use its https:// URL"));
        assert!(error("https://anima.test", Some(&not_pem)).contains("holds no PEM certificate"));
        assert!(
            error("https://anima.test", Some(&dir.path().join("missing.pem")))
                .contains("reading the CA certificate")
        );
    }

    #[test]
    fn sqlite_files_are_made_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        let fresh = dir.path().join("fresh.sqlite");
        keep_sqlite_private(&fresh).expect("private");
        assert_eq!(mode(&fresh), 0o600);

        let earlier = dir.path().join("earlier.sqlite");
        let wal = dir.path().join("earlier.sqlite-wal");
        for path in [&earlier, &wal] {
            std::fs::write(path, "").expect("write");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        keep_sqlite_private(&earlier).expect("private");
        assert_eq!(mode(&earlier), 0o600);
        assert_eq!(mode(&wal), 0o600);

        // A link planted where the database goes is refused, and its
        // target left as it was.
        let target = dir.path().join("someone-elses");
        std::fs::write(&target, "").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let planted = dir.path().join("planted.sqlite");
        std::os::unix::fs::symlink(&target, &planted).expect("symlink");
        assert!(keep_sqlite_private(&planted).is_err());
        assert_eq!(mode(&target), 0o644);
    }
}
